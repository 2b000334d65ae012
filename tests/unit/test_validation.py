"""Validation: every reason code on its own input, and agreement with the published JSON Schema."""

from __future__ import annotations

import json

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import JSON_SCHEMA_DIR
from schemas.dead_letters import RejectReason
from schemas.events import ClickEvent, EventType
from streams.validation import Rejected, validate_event

TS = 1_700_000_000_000
SCHEMA = json.loads((JSON_SCHEMA_DIR / "clickstream-event.schema.json").read_text())
SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def check(event: object, key: bytes | None = b"u1", message_ts: int = TS) -> ClickEvent | Rejected:
    raw = event if isinstance(event, bytes) else orjson.dumps(event)
    return validate_event(raw, key=key, message_ts=message_ts)


VIEW = {
    "event_id": "e1",
    "user_id": "u1",
    "ts": TS,
    "type": "view",
    "item_id": "i1",
    "category": "c",
    "price": 9.5,
}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"x" * 70_000, RejectReason.TOO_LARGE),
        (b"{oops", RejectReason.INVALID_JSON),
        (b"\xff\xfe", RejectReason.INVALID_JSON),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
        ({**VIEW, "type": "hover"}, RejectReason.UNKNOWN_EVENT_TYPE),
        ({k: v for k, v in VIEW.items() if k != "type"}, RejectReason.MISSING_FIELD),
        ({k: v for k, v in VIEW.items() if k != "item_id"}, RejectReason.MISSING_FIELD),
        ({k: v for k, v in VIEW.items() if k != "user_id"}, RejectReason.MISSING_FIELD),
        ({**VIEW, "ts": "2024-01-01"}, RejectReason.WRONG_TYPE),
        ({**VIEW, "ts": True}, RejectReason.WRONG_TYPE),
        ({**VIEW, "price": "9.5"}, RejectReason.WRONG_TYPE),
        ({**VIEW, "price": -1}, RejectReason.INVALID_VALUE),
        ({**VIEW, "ts": 1_700_000_000}, RejectReason.INVALID_VALUE),  # seconds, not ms
        ({**VIEW, "user_id": ""}, RejectReason.INVALID_VALUE),
        ({**VIEW, "ts": TS + 3_600_000}, RejectReason.TS_IN_FUTURE),
        (
            {
                "event_id": "e",
                "user_id": "u1",
                "ts": TS,
                "type": "purchase",
                "order_id": "o",
                "order_total": 5,
                "items": [{"item_id": "i", "price": "x"}],
            },
            RejectReason.WRONG_TYPE,
        ),
    ],
)
def test_each_problem_has_its_reason(raw: object, reason: RejectReason) -> None:
    result = check(raw)
    assert isinstance(result, Rejected)
    assert result.reason is reason
    assert result.detail


def test_key_must_be_the_user_id() -> None:
    result = check(VIEW, key=b"someone-else")
    assert isinstance(result, Rejected) and result.reason is RejectReason.KEY_MISMATCH
    result = check(VIEW, key=None)  # no key: the producer would scatter the user's events
    assert isinstance(result, Rejected) and result.reason is RejectReason.KEY_MISMATCH


def test_purchase_with_items_and_coupon() -> None:
    event = check(
        {
            "event_id": "e",
            "user_id": "u1",
            "ts": TS,
            "type": "purchase",
            "order_id": "o1",
            "order_total": 90,
            "coupon_code": "P10-X",
            "offer_id": "of-1",
            "items": [{"item_id": "a", "price": 50, "quantity": 2, "category": "shoes"}],
            "extra": 1,
        }
    )
    assert isinstance(event, ClickEvent)
    assert event.type is EventType.PURCHASE and event.order_total == 90.0
    assert event.items[0].quantity == 2 and event.coupon_code == "P10-X"


def test_round_trip_through_the_wire_form() -> None:
    event = check(VIEW)
    assert isinstance(event, ClickEvent)
    assert check(event.to_json_dict()) == event
    SCHEMA_VALIDATOR.validate(event.to_json_dict())


# --- agreement with the JSON Schema ---------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.just(TS),
    st.floats(-10, 1e3, allow_nan=False),
    st.text(max_size=3),
    st.sampled_from([t.value for t in EventType] + ["hover"]),
    st.lists(
        st.fixed_dictionaries(
            {"item_id": st.text(min_size=1, max_size=2), "price": st.integers(0, 9)}
        ),
        max_size=2,
    ),
)
_fields = st.sampled_from(
    [
        "event_id",
        "user_id",
        "ts",
        "type",
        "item_id",
        "category",
        "price",
        "quantity",
        "query",
        "order_id",
        "order_total",
        "offer_id",
        "coupon_code",
        "items",
        "session_id",
    ]
)


@st.composite
def candidate_events(draw: st.DrawFn) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "e",
        "user_id": "u1",
        "ts": TS,
        "type": draw(st.sampled_from([t.value for t in EventType])),
        "item_id": "i",
        "category": "c",
        "price": 1.0,
        "quantity": 1,
        "query": "q",
        "order_id": "o",
        "order_total": 1.0,
        "offer_id": "of",
    }
    for name in draw(st.lists(_fields, max_size=3)):
        if draw(st.booleans()):
            base.pop(name, None)
        else:
            base[name] = draw(_values)
    return {k: v for k, v in base.items() if v is not None}


@settings(max_examples=400, deadline=None)
@given(candidate_events())
def test_accepts_exactly_what_the_json_schema_accepts(event: dict[str, object]) -> None:
    ours = check(event, key=str(event.get("user_id", "")).encode())
    schema_ok = SCHEMA_VALIDATOR.is_valid(event)
    assert isinstance(ours, ClickEvent) == schema_ok, (event, ours)


DAY_MS = 86_400_000


@pytest.mark.parametrize(
    ("ts", "message_ts", "now", "reason"),
    [
        # A producer whose clock runs a day ahead stamps its messages a day ahead too: only
        # the worker's clock sees it.
        (TS + DAY_MS, TS + DAY_MS, TS, RejectReason.TS_IN_FUTURE),
        (4_102_444_800_000, 0, TS, RejectReason.TS_IN_FUTURE),  # year 2100, no Kafka timestamp
        (TS - 91 * DAY_MS, TS, TS, RejectReason.TS_TOO_OLD),  # beyond the 90-day horizon
        (TS + 60_000, TS, TS, None),  # a minute ahead: clocks differ that much
        (TS - 89 * DAY_MS, TS, TS, None),  # a backfill inside the horizon
        (TS - 200 * DAY_MS, 0, TS, None),  # no Kafka timestamp: no horizon to measure from
    ],
)
def test_event_time_must_be_plausible(
    ts: int, message_ts: int, now: int, reason: RejectReason | None
) -> None:
    result = validate_event(
        orjson.dumps({**VIEW, "ts": ts}),
        key=b"u1",
        message_ts=message_ts,
        now_ms=now,
        max_age_ms=90 * DAY_MS,
    )
    if reason is None:
        assert isinstance(result, ClickEvent)
    else:
        assert isinstance(result, Rejected) and result.reason is reason, result

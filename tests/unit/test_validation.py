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
        ({**VIEW, "margin": "3"}, RejectReason.WRONG_TYPE),
        ({**VIEW, "margin": -0.5}, RejectReason.INVALID_VALUE),
        ({**VIEW, "margin": 9.51}, RejectReason.INVALID_VALUE),  # above its price of 9.5
        ({**VIEW, "group": 7}, RejectReason.WRONG_TYPE),
        ({**VIEW, "group": ""}, RejectReason.INVALID_VALUE),
        ({**VIEW, "group": "g" * 65}, RejectReason.INVALID_VALUE),
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


PURCHASE = {
    "event_id": "e",
    "user_id": "u1",
    "ts": TS,
    "type": "purchase",
    "order_id": "o1",
    "order_total": 110,
    "items": [
        {"item_id": "a", "price": 50, "quantity": 2, "margin": 20},
        {"item_id": "b", "price": 10, "margin": 4},
    ],
}


def test_margins_are_read_on_item_events_and_purchase_lines() -> None:
    view = check({**VIEW, "margin": 9.5})  # the whole price: a margin may equal it
    assert isinstance(view, ClickEvent) and view.margin == 9.5
    free = check({**VIEW, "price": 0, "margin": 0})
    assert isinstance(free, ClickEvent) and free.margin == 0.0
    purchase = check(PURCHASE)
    assert isinstance(purchase, ClickEvent)
    assert [line.margin for line in purchase.items] == [20.0, 4.0]
    assert purchase.order_margin == 44.0  # 2 x 20 + 1 x 4


def test_an_order_without_every_lines_margin_has_no_margin() -> None:
    items = [PURCHASE["items"][0], {"item_id": "c", "price": 5}]  # type: ignore[index]
    purchase = check({**PURCHASE, "items": items})
    assert isinstance(purchase, ClickEvent) and purchase.order_margin is None
    no_items = check({k: v for k, v in PURCHASE.items() if k != "items"})
    assert isinstance(no_items, ClickEvent) and no_items.order_margin is None


@pytest.mark.parametrize(
    ("event", "detail"),
    [
        ({**VIEW, "margin": 12}, "'margin' 12 exceeds 'price' 9.5"),
        (
            {**PURCHASE, "items": [{"item_id": "a", "price": 50, "margin": 60}]},
            "items[0]: 'margin' 60 exceeds 'price' 50",
        ),
        (
            {**PURCHASE, "items": [{"item_id": "a", "price": 50, "margin": -1}]},
            "items[0]: 'margin' must be within 0..1e+06, got -1",
        ),
    ],
)
def test_a_margin_above_its_price_or_negative_is_an_invalid_value(
    event: dict[str, object], detail: str
) -> None:
    result = check(event)
    assert isinstance(result, Rejected), result
    assert (result.reason, result.detail.split(" (")[0]) == (RejectReason.INVALID_VALUE, detail)


def test_round_trip_through_the_wire_form() -> None:
    event = check({**VIEW, "group": "region-north"})
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
            {"item_id": st.text(min_size=1, max_size=2), "price": st.integers(0, 9)},
            optional={"margin": st.one_of(st.integers(-1, 10), st.just("1"))},
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
        "margin",
        "group",
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


def _margins_within_prices(event: dict[str, object]) -> bool:
    """The one rule the validator adds to the schema (which cannot compare two fields): a
    margin, where the event or a line has a price, is at most that price."""

    def within(record: object) -> bool:
        if not isinstance(record, dict):
            return True
        margin, price = record.get("margin"), record.get("price")
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (margin, price)
        )
        return not numbers or margin <= price  # type: ignore[operator]

    items = event.get("items")
    return within(event) and all(map(within, items if isinstance(items, list) else []))


@settings(max_examples=400, deadline=None)
@given(candidate_events())
def test_accepts_exactly_what_the_json_schema_accepts(event: dict[str, object]) -> None:
    ours = check(event, key=str(event.get("user_id", "")).encode())
    schema_ok = SCHEMA_VALIDATOR.is_valid(event) and _margins_within_prices(event)
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

"""The published examples and the example clients keep to the contracts (docs/contracts.md).

Every ``examples/*.json`` validates against its JSON Schema and, for clickstream events, passes
our own validator; a broken copy of each event is refused with the expected reason. Every event
the producer example builds is valid by both. The consumer example's rule drops redeliveries
and expired offers. The code references in docs/contracts.md exist.
"""

from __future__ import annotations

import copy
import doctest
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from examples import consume_offers, produce_events
from schemas import JSON_SCHEMA_DIR
from schemas.dead_letters import RejectReason
from schemas.events import ClickEvent, EventType
from streams.validation import REQUIRED_BY_TYPE, Rejected, validate_event

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CONTRACTS_DOC = ROOT / "docs" / "contracts.md"

#: Example file name prefix -> the schema its records follow.
SCHEMA_OF = {
    "event-": "clickstream-event",
    "offer": "offer",
    "dead-letter": "dead-letter",
    "decision": "decision",
    "outcome": "outcome",
    "suppression": "suppression",
}
OUTPUTS = ("offer", "dead-letter", "decision", "outcome", "suppression")


def _validator(schema_name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((JSON_SCHEMA_DIR / f"{schema_name}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def _schema_name(path: Path) -> str:
    for prefix, name in SCHEMA_OF.items():
        if path.name.startswith(prefix):
            return name
    raise AssertionError(f"{path.name}: no schema for this example (name it after one)")


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def _event_examples() -> list[Path]:
    return [p for p in _examples() if p.name.startswith("event-")]


def _check(event: dict[str, Any]) -> ClickEvent | Rejected:
    """Our validator as the worker runs it, sent now by a producer keyed by user_id."""
    raw = json.dumps(event).encode()
    key = str(event.get("user_id", "")).encode()
    return validate_event(
        raw,
        key=key,
        message_ts=int(event["ts"]),
        now_ms=int(event["ts"]),
        max_age_ms=90 * 86_400_000,
    )


def test_there_is_an_example_of_every_event_and_output_type() -> None:
    names = {p.name for p in _examples()}
    assert {f"event-{t.value}.json" for t in EventType} <= names
    assert {f"{output}.json" for output in OUTPUTS} <= names


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_example_validates_against_its_json_schema(path: Path) -> None:
    record = json.loads(path.read_text())
    errors = [e.message for e in _validator(_schema_name(path)).iter_errors(record)]
    assert errors == []


@pytest.mark.parametrize("path", _event_examples(), ids=lambda p: p.name)
def test_event_example_passes_our_validator(path: Path) -> None:
    event = json.loads(path.read_text())
    checked = _check(event)
    assert isinstance(checked, ClickEvent), checked
    assert checked.type.value == path.stem.removeprefix("event-")
    assert checked.to_json_dict() == event  # nothing in the example is ignored or renamed


#: A way to break an event, and the reason our validator must give. Each applies to any type.
BREAKAGES = {
    "ts in seconds": (lambda e: e.update(ts=e["ts"] // 1000), RejectReason.INVALID_VALUE),
    "no event_id": (lambda e: e.pop("event_id"), RejectReason.MISSING_FIELD),
    "user_id a number": (lambda e: e.update(user_id=42), RejectReason.WRONG_TYPE),
    "unknown type": (lambda e: e.update(type="abandon_cart"), RejectReason.UNKNOWN_EVENT_TYPE),
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=str)
@pytest.mark.parametrize("path", _event_examples(), ids=lambda p: p.name)
def test_broken_event_example_is_rejected_with_its_reason(path: Path, breakage: str) -> None:
    event = json.loads(path.read_text())
    broken = copy.deepcopy(event)
    breaks, reason = BREAKAGES[breakage]
    breaks(broken)
    raw = json.dumps(broken).encode()
    checked = validate_event(raw, key=b"u-42", message_ts=event["ts"], now_ms=event["ts"])
    assert isinstance(checked, Rejected) and checked.reason is reason, checked
    assert list(_validator("clickstream-event").iter_errors(broken)) != []


@pytest.mark.parametrize("path", _event_examples(), ids=lambda p: p.name)
def test_event_example_without_a_field_its_type_requires_is_rejected(path: Path) -> None:
    event = json.loads(path.read_text())
    for name in REQUIRED_BY_TYPE[EventType(event["type"])]:
        broken = {k: v for k, v in event.items() if k != name}
        checked = _check(broken)
        assert isinstance(checked, Rejected) and checked.reason is RejectReason.MISSING_FIELD
        assert list(_validator("clickstream-event").iter_errors(broken)) != [], name


def test_the_examples_carry_margins_and_a_margin_above_its_price_is_refused() -> None:
    """The schema cannot compare margin with price (two fields); our validator does."""
    purchase = _check(json.loads((EXAMPLES / "event-purchase.json").read_text()))
    assert isinstance(purchase, ClickEvent) and purchase.order_margin == pytest.approx(32.99)
    view = json.loads((EXAMPLES / "event-view.json").read_text())
    assert 0 < view["margin"] <= view["price"]
    too_high = {**view, "margin": view["price"] + 0.01}
    assert list(_validator("clickstream-event").iter_errors(too_high)) == []
    checked = _check(too_high)
    assert isinstance(checked, Rejected) and checked.reason is RejectReason.INVALID_VALUE


def test_event_sent_with_another_key_is_rejected() -> None:
    event = json.loads((EXAMPLES / "event-view.json").read_text())
    checked = validate_event(json.dumps(event).encode(), key=b"session-17", message_ts=event["ts"])
    assert isinstance(checked, Rejected) and checked.reason is RejectReason.KEY_MISMATCH


@pytest.mark.parametrize("output", OUTPUTS)
def test_broken_output_example_fails_its_schema(output: str) -> None:
    record = json.loads((EXAMPLES / f"{output}.json").read_text())
    first_required = _validator(output).schema["required"][0]
    del record[first_required]
    assert list(_validator(output).iter_errors(record)) != []


# --- the producer example ---------------------------------------------------------------------

START = 1_718_035_200_000


def _built_events() -> list[dict[str, Any]]:
    return produce_events.example_session("u-42", START)


def test_producer_builds_every_event_type() -> None:
    assert {e["type"] for e in _built_events()} == {t.value for t in EventType}


@pytest.mark.parametrize("event", _built_events(), ids=lambda e: str(e["type"]))
def test_every_built_event_is_valid_by_schema_and_validator(event: dict[str, Any]) -> None:
    assert [e.message for e in _validator("clickstream-event").iter_errors(event)] == []
    checked = validate_event(
        produce_events.message_value(event),
        key=produce_events.message_key(event),
        message_ts=START + 3_600_000,
        now_ms=START + 3_600_000,
        max_age_ms=90 * 86_400_000,
    )
    assert isinstance(checked, ClickEvent), checked


def test_built_events_have_fresh_ids_and_no_nulls() -> None:
    events = _built_events() + _built_events()
    assert len({e["event_id"] for e in events}) == len(events)
    assert all(v is not None for e in events for v in e.values())


def test_builder_defaults_ts_to_now_in_epoch_milliseconds() -> None:
    before = produce_events.now_ms()
    event = produce_events.view_event("u-1", "sku-1", "shoes", price=10.0)
    assert before <= event["ts"] <= produce_events.now_ms()
    assert event["ts"] > 10**12  # milliseconds, not seconds


# --- the consumer example ---------------------------------------------------------------------


def _offer(offer_id: str, expires_at: int) -> dict[str, Any]:
    offer = json.loads((EXAMPLES / "offer.json").read_text())
    return {**offer, "offer_id": offer_id, "expires_at": expires_at}


def test_consumer_drops_redeliveries_and_expired_offers_and_keeps_the_rest() -> None:
    now = 1_000_000
    a, b, expired = _offer("of-a", now + 1), _offer("of-b", now + 10), _offer("of-c", now)
    show, seen = consume_offers.offers_to_show([a, expired, b, a], seen={}, now_ms=now)
    assert [o["offer_id"] for o in show] == ["of-a", "of-b"]
    again, _ = consume_offers.offers_to_show([b, _offer("of-d", now + 5)], seen=seen, now_ms=now)
    assert [o["offer_id"] for o in again] == ["of-d"]


def test_consumer_forgets_an_offer_once_it_expired() -> None:
    show, seen = consume_offers.offers_to_show([_offer("of-a", 100)], seen={}, now_ms=50)
    assert show and seen == {"of-a": 100}
    assert consume_offers.offers_to_show([], seen=seen, now_ms=100) == ([], {})


def test_consumer_decodes_the_offer_example() -> None:
    raw = (EXAMPLES / "offer.json").read_bytes()
    assert consume_offers.decode_offer(raw) == json.loads(raw)
    assert consume_offers.decode_offer(b"not json") is None
    assert consume_offers.decode_offer(b"[1]") is None


@pytest.mark.parametrize("module", [produce_events, consume_offers], ids=lambda m: m.__name__)
def test_example_docstrings_run(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("module", [produce_events, consume_offers], ids=lambda m: m.__name__)
def test_example_help_needs_no_broker(module: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    assert "--bootstrap" in capsys.readouterr().out


# --- the contracts document -------------------------------------------------------------------

#: `streams/validation.py`-style paths in backticks; `examples/event-*.json` is a glob.
CODE_REFERENCE = re.compile(
    r"`((?:schemas|streams|agents|promo|simulator|examples|deploy|tests)/[\w/.*-]+)`"
)


def _code_references() -> list[str]:
    return sorted(set(CODE_REFERENCE.findall(CONTRACTS_DOC.read_text())))


def test_contracts_doc_cites_code() -> None:
    assert len(_code_references()) >= 10


@pytest.mark.parametrize("reference", _code_references())
def test_contracts_doc_code_reference_exists(reference: str) -> None:
    found = list(ROOT.glob(reference)) if "*" in reference else [ROOT / reference]
    assert found and all(p.exists() for p in found), f"docs/contracts.md cites {reference}"


#: "`streams/attribution.py`, `coupon_discount`": a module and a name defined in it.
NAMED_REFERENCE = re.compile(r"`([\w/]+\.py)`,\s+`(?:\w+\.)?(\w+)`")


@pytest.mark.parametrize(
    "module, name", sorted(set(NAMED_REFERENCE.findall(CONTRACTS_DOC.read_text())))
)
def test_contracts_doc_named_reference_is_defined_there(module: str, name: str) -> None:
    source = (ROOT / module).read_text()
    assert re.search(rf"^\s*(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]", source, re.M), name

"""Raw clickstream bytes -> a :class:`ClickEvent`, or a :class:`Rejected` value with its reason.

Rejection is data, not an exception: the agent routes it to the dead-letter topic with the
original bytes and where they came from. The rules are those of
``schemas/json/clickstream-event.schema.json`` (a test checks both agree), written by hand
because a generic JSON Schema validator costs tens of microseconds per event on the hot path.

>>> event = validate_event(
...     b'{"event_id":"e1","user_id":"u1","ts":1700000000000,"type":"search","query":"shoes"}',
...     key=b"u1", message_ts=1700000000000)
>>> event.type, event.query
(<EventType.SEARCH: 'search'>, 'shoes')
>>> validate_event(b'{"event_id":"e1"', key=None, message_ts=0).reason
<RejectReason.INVALID_JSON: 'invalid_json'>
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.dead_letters import RejectReason
from schemas.events import ClickEvent, EventType, LineItem

MIN_TS = 946_684_800_000  # 2000-01-01: anything older is a unit mistake (seconds, not ms)
MAX_TS = 32_503_680_000_000  # year 3000
MAX_ID = 128
MAX_PRICE = 1_000_000.0
MAX_TOTAL = 100_000_000.0
MAX_QUANTITY = 10_000
MAX_ITEMS = 500
MAX_GROUP = 64

_TYPES = {t.value: t for t in EventType}

#: Fields each event type must carry, beyond event_id, user_id, ts and type.
REQUIRED_BY_TYPE: dict[EventType, tuple[str, ...]] = {
    EventType.VIEW: ("item_id", "category", "price"),
    EventType.SEARCH: ("query",),
    EventType.ADD_TO_CART: ("item_id", "category", "price", "quantity"),
    EventType.REMOVE_FROM_CART: ("item_id", "quantity"),
    EventType.PURCHASE: ("order_id", "order_total"),
    EventType.OFFER_SHOWN: ("offer_id",),
    EventType.OFFER_CLICKED: ("offer_id",),
}


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message was refused. ``detail`` names the field, for the people who fix it."""

    reason: RejectReason
    detail: str


class _Invalid(Exception):
    """Internal: carries a rejection out of nested checks; never escapes this module."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.rejected = Rejected(reason, detail)


def validate_event(
    raw: bytes,
    *,
    key: bytes | None,
    message_ts: int,
    max_bytes: int = 65_536,
    max_future_skew_ms: int = 300_000,
    now_ms: int | None = None,
    max_age_ms: int | None = None,
) -> ClickEvent | Rejected:
    """Check one message of the clickstream topic.

    Event time must be plausible, or one producer's clock would poison the windows:

    - an event more than ``max_future_skew_ms`` ahead of the message's Kafka timestamp, or of
      the worker's clock ``now_ms``, is rejected (``ts_in_future``). The Kafka timestamp alone
      is not enough: a producer whose clock runs ahead stamps its messages ahead too, and a
      timestamp of 0 (none) says nothing;
    - an event more than ``max_age_ms`` older than its Kafka timestamp is rejected
      (``ts_too_old``): the horizon beyond which no window looks.

    A message whose key is not its ``user_id`` is rejected too: it would sit on another user's
    partition and split that user's state.
    """
    if len(raw) > max_bytes:
        return Rejected(RejectReason.TOO_LARGE, f"message is {len(raw)} bytes, limit {max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(RejectReason.INVALID_JSON, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return Rejected(
            RejectReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(data).__name__}"
        )
    try:
        event = _build_event(data)
    except _Invalid as invalid:
        return invalid.rejected
    for clock, name in ((message_ts, "the message timestamp"), (now_ms, "the worker's clock")):
        if clock and event.ts > clock + max_future_skew_ms:
            return Rejected(
                RejectReason.TS_IN_FUTURE,
                f"ts {event.ts} is {(event.ts - clock) // 1000} s "
                f"ahead of {name} (at most {max_future_skew_ms // 1000} s)",
            )
    if max_age_ms is not None and message_ts > 0 and event.ts < message_ts - max_age_ms:
        return Rejected(
            RejectReason.TS_TOO_OLD,
            f"ts {event.ts} is {(message_ts - event.ts) // 86_400_000} days before the message "
            f"timestamp (at most {max_age_ms // 86_400_000})",
        )
    if key != event.user_id.encode():
        # Without the user id as key, the producer spreads a user's events over partitions:
        # their state would split, and contact caps would count each part separately.
        return Rejected(
            RejectReason.KEY_MISMATCH,
            f"message key {key[:64] if key is not None else None!r} "
            f"is not the user_id {event.user_id[:64]!r}",
        )
    return event


def _build_event(data: dict[str, Any]) -> ClickEvent:
    type_name = data.get("type")
    if type_name is None:
        raise _Invalid(RejectReason.MISSING_FIELD, "missing field 'type'")
    event_type = _TYPES.get(type_name) if isinstance(type_name, str) else None
    if event_type is None:
        raise _Invalid(
            RejectReason.UNKNOWN_EVENT_TYPE, f"unknown event type {str(type_name)[:64]!r}"
        )
    for name in REQUIRED_BY_TYPE[event_type]:
        if data.get(name) is None:
            raise _Invalid(
                RejectReason.MISSING_FIELD, f"{event_type.value} event needs field {name!r}"
            )
    ts = _integer(data, "ts", MIN_TS, MAX_TS, required=True)
    assert ts is not None
    items = data.get("items")
    event = ClickEvent(
        event_id=_text(data, "event_id", required=True) or "",
        user_id=_text(data, "user_id", required=True) or "",
        ts=ts,
        type=event_type,
        session_id=_text(data, "session_id", min_length=0),
        item_id=_text(data, "item_id"),
        category=_text(data, "category"),
        price=_number(data, "price", MAX_PRICE),
        margin=_number(data, "margin", MAX_PRICE),
        quantity=_integer(data, "quantity", 1, MAX_QUANTITY),
        query=_text(data, "query", min_length=0, max_length=1024),
        order_id=_text(data, "order_id"),
        order_total=_number(data, "order_total", MAX_TOTAL),
        items=_line_items(items) if items is not None else (),
        coupon_code=_text(data, "coupon_code", max_length=64),
        offer_id=_text(data, "offer_id"),
        group=_text(data, "group", max_length=MAX_GROUP),
    )
    _check_margin(event.margin, event.price)
    return event


def _text(
    data: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    min_length: int = 1,
    max_length: int = MAX_ID,
) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _Invalid(RejectReason.MISSING_FIELD, f"missing field {name!r}")
        return None
    if not isinstance(value, str):
        raise _Invalid(
            RejectReason.WRONG_TYPE, f"{name!r} must be a string, got {type(value).__name__}"
        )
    if not min_length <= len(value) <= max_length:
        raise _Invalid(
            RejectReason.INVALID_VALUE, f"{name!r} must have {min_length}..{max_length} characters"
        )
    return value


def _number(data: dict[str, Any], name: str, maximum: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(
            RejectReason.WRONG_TYPE, f"{name!r} must be a number, got {type(value).__name__}"
        )
    if not 0 <= value <= maximum:
        raise _Invalid(
            RejectReason.INVALID_VALUE, f"{name!r} must be within 0..{maximum:g}, got {value}"
        )
    return float(value)


def _check_margin(margin: float | None, price: float | None) -> None:
    """A margin is part of its price (price minus unit cost): never above it. JSON Schema
    cannot compare two fields, so this check is the validator's alone."""
    if margin is not None and price is not None and margin > price:
        raise _Invalid(
            RejectReason.INVALID_VALUE,
            f"'margin' {margin:g} exceeds 'price' {price:g} (margin = price - unit cost)",
        )


def _integer(
    data: dict[str, Any], name: str, minimum: int, maximum: int, *, required: bool = False
) -> int | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _Invalid(RejectReason.MISSING_FIELD, f"missing field {name!r}")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON Schema's "integer" is any number without a fraction: 2.0 too
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(
            RejectReason.WRONG_TYPE, f"{name!r} must be an integer, got {type(value).__name__}"
        )
    if not minimum <= value <= maximum:
        raise _Invalid(
            RejectReason.INVALID_VALUE, f"{name!r} must be within {minimum}..{maximum}, got {value}"
        )
    return value


def _line_items(value: Any) -> tuple[LineItem, ...]:
    if not isinstance(value, list):
        raise _Invalid(RejectReason.WRONG_TYPE, "'items' must be a list")
    if len(value) > MAX_ITEMS:
        raise _Invalid(RejectReason.INVALID_VALUE, f"'items' holds more than {MAX_ITEMS} lines")
    lines = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise _Invalid(RejectReason.WRONG_TYPE, f"items[{i}] must be an object")
        try:
            item_id = _text(entry, "item_id", required=True)
            price = _number(entry, "price", MAX_PRICE)
            if price is None:
                raise _Invalid(RejectReason.MISSING_FIELD, "missing field 'price'")
            quantity = _integer(entry, "quantity", 1, MAX_QUANTITY) or 1
            category = _text(entry, "category")
            margin = _number(entry, "margin", MAX_PRICE)
            _check_margin(margin, price)
        except _Invalid as invalid:
            rejected = invalid.rejected
            raise _Invalid(rejected.reason, f"items[{i}]: {rejected.detail}") from None
        lines.append(LineItem(item_id or "", price, quantity, category, margin))
    return tuple(lines)

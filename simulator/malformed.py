"""Bad messages, mixed into the clickstream the way buggy producers would send them.

Every malformed message is an extra message next to a good event (the good stream stays
whole), made from that event so it looks plausible: same user, same time. ``EXPECTED_REASON``
says which dead-letter reason the engine should give each kind; ``EXPECTED_OUTCOME`` covers
every kind, including the odd-but-valid ones (stored as events) and resends (stored once).

The simulator injects the first eleven kinds (``SIMULATOR_KINDS``); the chaos suite's flood
(``chaos.flood``) uses them all. Kinds that are valid events are written for a separate
"flood" user of the run (``flood_user``), so they never change a real user's state; only
``duplicate_near`` repeats a real user's event, which the engine must skip.

>>> injector = MalformedInjector(share=1.0, run_id="r1", seed=4)
>>> good = {"event_id": "r1-0", "user_id": "u00001", "ts": 1_700_000_000_000,
...         "type": "search", "query": "lamp", "session_id": "r1-s0"}
>>> [m.malformed for m in injector.messages([good])][0] is None
True
>>> len(injector.messages([good])), sum(injector.counts.values())
(2, 2)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import numpy as np
import orjson

from schemas.dead_letters import RejectReason

#: "Far in the future": ten years ahead of the event's own time, whatever the run's length.
FUTURE_SKEW_MS = 10 * 365 * 86_400_000
#: "Far in the past": a year before the event's own time, beyond any horizon the worker keeps.
PAST_SKEW_MS = 365 * 86_400_000


class MalformedKind(StrEnum):
    NOT_JSON = "not_json"
    NON_UTF8 = "non_utf8"
    JSON_ARRAY = "json_array"
    MISSING_USER_ID = "missing_user_id"
    TS_AS_STRING = "ts_as_string"
    UNKNOWN_TYPE = "unknown_type"
    NEGATIVE_PRICE = "negative_price"
    VIEW_WITHOUT_ITEM = "view_without_item"
    TS_IN_FUTURE = "ts_in_future"
    TS_FAR_PAST = "ts_far_past"
    KEY_MISMATCH = "key_mismatch"
    # The chaos flood's kinds (not injected by `promo simulate`).
    EMPTY_VALUE = "empty_value"
    TOMBSTONE = "tombstone"
    INVALID_UTF8_IN_STRING = "invalid_utf8_in_string"
    UTF8_BOM = "utf8_bom"
    JSON_STRING = "json_string"
    JSON_NUMBER = "json_number"
    JSON_NULL = "json_null"
    NAN_PRICE = "nan_price"
    INFINITE_PRICE = "infinite_price"
    DEEP_NESTING = "deep_nesting"
    JUST_TOO_LARGE = "just_too_large"
    HUGE_1MB = "huge_1mb"
    HUGE_4MB = "huge_4mb"
    HUGE_8MB = "huge_8mb"
    MISSING_TS = "missing_ts"
    MISSING_EVENT_ID = "missing_event_id"
    MISSING_TYPE = "missing_type"
    TS_IN_SECONDS = "ts_in_seconds"
    TS_NEGATIVE = "ts_negative"
    TS_FRACTIONAL = "ts_fractional"
    TS_BOOL = "ts_bool"
    PRICE_AS_STRING = "price_as_string"
    PRICE_HUGE = "price_huge"
    CART_QUANTITY_ZERO = "cart_quantity_zero"
    CART_QUANTITY_FRACTIONAL = "cart_quantity_fractional"
    USER_ID_EMPTY = "user_id_empty"
    USER_ID_NUMBER = "user_id_number"
    USER_ID_TOO_LONG = "user_id_too_long"
    TYPE_NUMBER = "type_number"
    TYPE_UPPER_CASE = "type_upper_case"
    EMPTY_KEY = "empty_key"
    NO_KEY = "no_key"
    CLOCK_AHEAD = "clock_ahead"
    TS_SLIGHTLY_AHEAD = "ts_slightly_ahead"
    ITEMS_NOT_A_LIST = "items_not_a_list"
    NEGATIVE_ORDER_TOTAL = "negative_order_total"
    QUERY_TOO_LONG = "query_too_long"
    # Valid events a careless producer sends: stored, never dead letters.
    EXTRA_FIELDS = "extra_fields"
    NESTED_EXTRA = "nested_extra"
    PURCHASE_UNKNOWN_OFFER = "purchase_unknown_offer"
    SHOWN_UNKNOWN_OFFER = "shown_unknown_offer"
    UNICODE_TEXT = "unicode_text"
    # Resends: the same event id again, stored once.
    DUPLICATE_NEAR = "duplicate_near"
    DUPLICATE_FAR = "duplicate_far"
    DUPLICATE_OTHER_TS = "duplicate_other_ts"


class Accepted(StrEnum):
    """What becomes of a kind that is no dead letter."""

    #: A valid event: one more row in ``events``.
    STORED = "stored"
    #: A resend of an event already sent: no new row (``events`` is keyed by user and event id).
    DUPLICATE = "duplicate"


#: The kinds ``promo simulate`` injects.
SIMULATOR_KINDS: Final = (
    MalformedKind.NOT_JSON,
    MalformedKind.NON_UTF8,
    MalformedKind.JSON_ARRAY,
    MalformedKind.MISSING_USER_ID,
    MalformedKind.TS_AS_STRING,
    MalformedKind.UNKNOWN_TYPE,
    MalformedKind.NEGATIVE_PRICE,
    MalformedKind.VIEW_WITHOUT_ITEM,
    MalformedKind.TS_IN_FUTURE,
    MalformedKind.TS_FAR_PAST,
    MalformedKind.KEY_MISMATCH,
)

#: Sizes of the oversized kinds' payloads, bytes (the worker's limit is 64 KiB by default;
#: Tansu took 32 MiB messages when measured, so these are the flood's choice, not a limit).
HUGE_SIZES: Final = {
    MalformedKind.HUGE_1MB: 1 << 20,
    MalformedKind.HUGE_4MB: 4 << 20,
    MalformedKind.HUGE_8MB: 8 << 20,
}
JUST_TOO_LARGE_BYTES: Final = 65_536 + 1
#: How far ahead a producer's clock runs for ``clock_ahead`` (its Kafka timestamp too).
CLOCK_AHEAD_MS: Final = 2 * 3_600_000
#: Deep enough to exceed any sane JSON parser's depth limit (orjson: 1024).
TOO_DEEP: Final = 5_000
#: Nesting a parser must still accept, in an ignored extra field.
ACCEPTABLE_DEPTH: Final = 100

EXPECTED_REASON: dict[MalformedKind, RejectReason] = {
    MalformedKind.NOT_JSON: RejectReason.INVALID_JSON,
    MalformedKind.NON_UTF8: RejectReason.INVALID_JSON,
    MalformedKind.JSON_ARRAY: RejectReason.NOT_AN_OBJECT,
    MalformedKind.MISSING_USER_ID: RejectReason.MISSING_FIELD,
    MalformedKind.TS_AS_STRING: RejectReason.WRONG_TYPE,
    MalformedKind.UNKNOWN_TYPE: RejectReason.UNKNOWN_EVENT_TYPE,
    MalformedKind.NEGATIVE_PRICE: RejectReason.INVALID_VALUE,
    MalformedKind.VIEW_WITHOUT_ITEM: RejectReason.MISSING_FIELD,
    MalformedKind.TS_IN_FUTURE: RejectReason.TS_IN_FUTURE,
    MalformedKind.TS_FAR_PAST: RejectReason.TS_TOO_OLD,
    MalformedKind.KEY_MISMATCH: RejectReason.KEY_MISMATCH,
    MalformedKind.EMPTY_VALUE: RejectReason.INVALID_JSON,
    MalformedKind.TOMBSTONE: RejectReason.INVALID_JSON,
    MalformedKind.INVALID_UTF8_IN_STRING: RejectReason.INVALID_JSON,
    MalformedKind.UTF8_BOM: RejectReason.INVALID_JSON,
    MalformedKind.JSON_STRING: RejectReason.NOT_AN_OBJECT,
    MalformedKind.JSON_NUMBER: RejectReason.NOT_AN_OBJECT,
    MalformedKind.JSON_NULL: RejectReason.NOT_AN_OBJECT,
    MalformedKind.NAN_PRICE: RejectReason.INVALID_JSON,
    MalformedKind.INFINITE_PRICE: RejectReason.INVALID_JSON,
    MalformedKind.DEEP_NESTING: RejectReason.INVALID_JSON,
    MalformedKind.JUST_TOO_LARGE: RejectReason.TOO_LARGE,
    MalformedKind.HUGE_1MB: RejectReason.TOO_LARGE,
    MalformedKind.HUGE_4MB: RejectReason.TOO_LARGE,
    MalformedKind.HUGE_8MB: RejectReason.TOO_LARGE,
    MalformedKind.MISSING_TS: RejectReason.MISSING_FIELD,
    MalformedKind.MISSING_EVENT_ID: RejectReason.MISSING_FIELD,
    MalformedKind.MISSING_TYPE: RejectReason.MISSING_FIELD,
    MalformedKind.TS_IN_SECONDS: RejectReason.INVALID_VALUE,
    MalformedKind.TS_NEGATIVE: RejectReason.INVALID_VALUE,
    MalformedKind.TS_FRACTIONAL: RejectReason.WRONG_TYPE,
    MalformedKind.TS_BOOL: RejectReason.WRONG_TYPE,
    MalformedKind.PRICE_AS_STRING: RejectReason.WRONG_TYPE,
    MalformedKind.PRICE_HUGE: RejectReason.INVALID_VALUE,
    MalformedKind.CART_QUANTITY_ZERO: RejectReason.INVALID_VALUE,
    MalformedKind.CART_QUANTITY_FRACTIONAL: RejectReason.WRONG_TYPE,
    MalformedKind.USER_ID_EMPTY: RejectReason.INVALID_VALUE,
    MalformedKind.USER_ID_NUMBER: RejectReason.WRONG_TYPE,
    MalformedKind.USER_ID_TOO_LONG: RejectReason.INVALID_VALUE,
    MalformedKind.TYPE_NUMBER: RejectReason.UNKNOWN_EVENT_TYPE,
    MalformedKind.TYPE_UPPER_CASE: RejectReason.UNKNOWN_EVENT_TYPE,
    MalformedKind.EMPTY_KEY: RejectReason.KEY_MISMATCH,
    MalformedKind.NO_KEY: RejectReason.KEY_MISMATCH,
    MalformedKind.CLOCK_AHEAD: RejectReason.TS_IN_FUTURE,
    MalformedKind.TS_SLIGHTLY_AHEAD: RejectReason.TS_IN_FUTURE,
    MalformedKind.ITEMS_NOT_A_LIST: RejectReason.WRONG_TYPE,
    MalformedKind.NEGATIVE_ORDER_TOTAL: RejectReason.INVALID_VALUE,
    MalformedKind.QUERY_TOO_LONG: RejectReason.INVALID_VALUE,
}

#: What the engine and ClickHouse must make of every kind: a dead letter with this reason, a
#: stored event, or a resend stored once.
EXPECTED_OUTCOME: dict[MalformedKind, RejectReason | Accepted] = {
    **EXPECTED_REASON,
    MalformedKind.EXTRA_FIELDS: Accepted.STORED,
    MalformedKind.NESTED_EXTRA: Accepted.STORED,
    MalformedKind.PURCHASE_UNKNOWN_OFFER: Accepted.STORED,
    MalformedKind.SHOWN_UNKNOWN_OFFER: Accepted.STORED,
    MalformedKind.UNICODE_TEXT: Accepted.STORED,
    MalformedKind.DUPLICATE_NEAR: Accepted.DUPLICATE,
    MalformedKind.DUPLICATE_FAR: Accepted.DUPLICATE,
    MalformedKind.DUPLICATE_OTHER_TS: Accepted.DUPLICATE,
}

_KINDS = SIMULATOR_KINDS


def flood_user(run_id: str, user_id: str) -> str:
    """The flood's own user beside a real one: odd-but-valid events never touch real users."""
    return f"{run_id}-flood-{user_id}"


@dataclass(frozen=True, slots=True)
class Message:
    """One clickstream message as produced: key and value bytes (None: no key, or a
    tombstone); ``malformed`` says if bad; ``timestamp_ms`` is the Kafka timestamp a producer
    with a wrong clock would stamp (None: the producer's own clock)."""

    key: bytes | None
    value: bytes | None
    malformed: MalformedKind | None = None
    timestamp_ms: int | None = None


class MalformedInjector:
    """Encodes good events and adds a malformed message after a ``share`` of them."""

    def __init__(self, share: float, run_id: str, seed: int, now_ms: int | None = None) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"malformed share must be within 0..1, got {share}")
        self.share = share
        self.run_id = run_id
        #: The wall clock the run's producer stamps by (``clock_ahead`` runs ahead of it).
        self.now_ms = now_ms
        self.counts: Counter[MalformedKind] = Counter()
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
        self._serial = 0
        #: Valid flood events already sent, for the resends of ``duplicate_far``.
        self._flood_sent: list[dict[str, Any]] = []

    def messages(self, events: Iterable[dict[str, Any]]) -> list[Message]:
        out = []
        for event in events:
            key = event["user_id"].encode()
            out.append(Message(key, orjson.dumps(event)))
            if self.share and self._rng.random() < self.share:
                kind = _KINDS[int(self._rng.random() * len(_KINDS))]
                out.append(self.malformed(kind, event))
        return out

    def malformed(self, kind: MalformedKind, event: dict[str, Any]) -> Message:
        """A message of ``kind`` modelled on ``event`` (its user, time and session)."""
        self.counts[kind] += 1
        self._serial += 1
        user_id = event["user_id"]
        key = user_id.encode()
        # A view is the template: it has the fields several kinds break (item, price).
        bad: dict[str, Any] = {
            "event_id": f"{self.run_id}-x{self._serial}",
            "user_id": user_id,
            "ts": event["ts"],
            "type": "view",
            "session_id": event.get("session_id") or f"{self.run_id}-x",
            "item_id": "i0000",
            "category": "electronics",
            "price": 19.99,
        }
        if kind is MalformedKind.NOT_JSON:
            return Message(key, b'{"event_id": "' + bad["event_id"].encode() + b'", "user_id', kind)
        if kind is MalformedKind.NON_UTF8:
            return Message(key, b'{"event_id": "\xff\xfe\xc3(", "type": "view"}', kind)
        if kind is MalformedKind.JSON_ARRAY:
            return Message(key, orjson.dumps([bad]), kind)
        if kind is MalformedKind.MISSING_USER_ID:
            del bad["user_id"]
        elif kind is MalformedKind.TS_AS_STRING:
            bad["ts"] = str(bad["ts"])
        elif kind is MalformedKind.UNKNOWN_TYPE:
            bad["type"] = "hover"
        elif kind is MalformedKind.NEGATIVE_PRICE:
            bad["price"] = -bad["price"]
        elif kind is MalformedKind.VIEW_WITHOUT_ITEM:
            del bad["item_id"]
        elif kind is MalformedKind.TS_IN_FUTURE:
            bad["ts"] += FUTURE_SKEW_MS
        elif kind is MalformedKind.TS_FAR_PAST:
            bad["ts"] -= PAST_SKEW_MS
        elif kind is MalformedKind.KEY_MISMATCH:
            # A classic producer bug: keyed by session instead of user.
            key = bad["session_id"].encode()
        else:
            return self._flood_kind(kind, event, bad)
        return Message(key, orjson.dumps(bad), kind)

    def _flood_kind(
        self, kind: MalformedKind, event: dict[str, Any], bad: dict[str, Any]
    ) -> Message:
        """The chaos flood's kinds; ``bad`` is the view template of :meth:`malformed`."""
        key: bytes | None = bad["user_id"].encode()
        raw = orjson.dumps(bad)
        head = raw[:-1]  # the template without its closing brace, to append raw JSON text
        if kind is MalformedKind.EMPTY_VALUE:
            return Message(key, b"", kind)
        if kind is MalformedKind.TOMBSTONE:
            return Message(key, None, kind)
        if kind is MalformedKind.INVALID_UTF8_IN_STRING:
            return Message(key, head + b', "query": "caf\xe9 \xff"}', kind)
        if kind is MalformedKind.UTF8_BOM:
            return Message(key, b"\xef\xbb\xbf" + raw, kind)
        if kind is MalformedKind.JSON_STRING:
            return Message(key, b'"view"', kind)
        if kind is MalformedKind.JSON_NUMBER:
            return Message(key, b"42", kind)
        if kind is MalformedKind.JSON_NULL:
            return Message(key, b"null", kind)
        if kind is MalformedKind.NAN_PRICE:
            return Message(key, raw.replace(b'"price":19.99', b'"price":NaN'), kind)
        if kind is MalformedKind.INFINITE_PRICE:
            return Message(key, raw.replace(b'"price":19.99', b'"price":Infinity'), kind)
        if kind is MalformedKind.DEEP_NESTING:
            nested = b"[" * TOO_DEEP + b"]" * TOO_DEEP
            return Message(key, head + b',"extra":' + nested + b"}", kind)
        if kind is MalformedKind.JUST_TOO_LARGE:
            pad = JUST_TOO_LARGE_BYTES - len(raw) - len(b',"pad":""')
            return Message(key, head + b',"pad":"' + b"x" * pad + b'"}', kind)
        if kind in HUGE_SIZES:
            size = HUGE_SIZES[kind]
            return Message(key, head + b',"pad":"' + b"x" * (size - len(raw) - 9) + b'"}', kind)
        if kind is MalformedKind.CLOCK_AHEAD:
            # The producer's clock runs ahead: its Kafka timestamp agrees with the event's ts,
            # only the worker's own clock can tell.
            ahead = max(event["ts"], self.now_ms or 0) + CLOCK_AHEAD_MS
            bad["ts"] = ahead
            return Message(key, orjson.dumps(bad), kind, timestamp_ms=ahead)
        changes: dict[MalformedKind, tuple[str, Any]] = {
            MalformedKind.TS_IN_SECONDS: ("ts", bad["ts"] // 1000),
            MalformedKind.TS_NEGATIVE: ("ts", -bad["ts"]),
            MalformedKind.TS_FRACTIONAL: ("ts", bad["ts"] + 0.5),
            MalformedKind.TS_BOOL: ("ts", True),
            MalformedKind.PRICE_AS_STRING: ("price", "19.99"),
            MalformedKind.PRICE_HUGE: ("price", 1e12),
            MalformedKind.USER_ID_EMPTY: ("user_id", ""),
            MalformedKind.USER_ID_NUMBER: ("user_id", 12345),
            MalformedKind.USER_ID_TOO_LONG: ("user_id", "u" * 200),
            MalformedKind.TYPE_NUMBER: ("type", 3),
            MalformedKind.TYPE_UPPER_CASE: ("type", "VIEW"),
            MalformedKind.TS_SLIGHTLY_AHEAD: ("ts", bad["ts"] + 600_000),
        }
        if kind in changes:
            name, value = changes[kind]
            bad[name] = value
            if kind is MalformedKind.TS_SLIGHTLY_AHEAD:
                # Ten minutes ahead of its own Kafka timestamp: the producer stamped the
                # event's original time, then the event's clock jumped.
                return Message(key, orjson.dumps(bad), kind, timestamp_ms=event["ts"])
            return Message(key, orjson.dumps(bad), kind)
        removed = {
            MalformedKind.MISSING_TS: "ts",
            MalformedKind.MISSING_EVENT_ID: "event_id",
            MalformedKind.MISSING_TYPE: "type",
        }
        if kind in removed:
            del bad[removed[kind]]
            return Message(key, orjson.dumps(bad), kind)
        if kind in (MalformedKind.CART_QUANTITY_ZERO, MalformedKind.CART_QUANTITY_FRACTIONAL):
            bad["type"] = "add_to_cart"
            bad["quantity"] = 0 if kind is MalformedKind.CART_QUANTITY_ZERO else 1.5
            return Message(key, orjson.dumps(bad), kind)
        if kind in (MalformedKind.ITEMS_NOT_A_LIST, MalformedKind.NEGATIVE_ORDER_TOTAL):
            order = self._purchase(bad)
            if kind is MalformedKind.ITEMS_NOT_A_LIST:
                order["items"] = {"item_id": "i0000", "price": 19.99}
            else:
                order["order_total"] = -5.0
            return Message(key, orjson.dumps(order), kind)
        if kind is MalformedKind.QUERY_TOO_LONG:
            search = {k: bad[k] for k in ("event_id", "user_id", "ts", "session_id")}
            search.update(type="search", query="lamp " * 400)
            return Message(key, orjson.dumps(search), kind)
        if kind is MalformedKind.EMPTY_KEY:
            return Message(b"", raw, kind)
        if kind is MalformedKind.NO_KEY:
            return Message(None, raw, kind)
        if kind is MalformedKind.DUPLICATE_NEAR:
            # The producer's retry of the real event it just sent: same bytes, same key.
            return Message(event["user_id"].encode(), orjson.dumps(event), kind)
        return self._flood_event(kind, event, bad)

    def _flood_event(
        self, kind: MalformedKind, event: dict[str, Any], bad: dict[str, Any]
    ) -> Message:
        """Valid events and resends, for the flood user beside ``event``'s user."""
        if kind in (MalformedKind.DUPLICATE_FAR, MalformedKind.DUPLICATE_OTHER_TS):
            if not self._flood_sent:
                # Nothing to resend yet: resend the real event (a near duplicate, skipped).
                return Message(event["user_id"].encode(), orjson.dumps(event), kind)
            if kind is MalformedKind.DUPLICATE_FAR:
                # The oldest flood event again, however much later: a producer replaying.
                first = self._flood_sent[0]
                return Message(first["user_id"].encode(), orjson.dumps(first), kind)
            # The latest flood event, resent with another ts: ClickHouse keeps one row.
            last = {**self._flood_sent[-1], "ts": self._flood_sent[-1]["ts"] + 1_000}
            return Message(last["user_id"].encode(), orjson.dumps(last), kind)
        user = flood_user(self.run_id, event["user_id"])
        bad["user_id"] = user
        if kind is MalformedKind.EXTRA_FIELDS:
            bad.update(referrer="newsletter", experiment={"id": 7, "arm": "b"}, tags=["a", "b"])
        elif kind is MalformedKind.NESTED_EXTRA:
            bad["extra"] = orjson.loads(b"[" * ACCEPTABLE_DEPTH + b"]" * ACCEPTABLE_DEPTH)
        elif kind is MalformedKind.PURCHASE_UNKNOWN_OFFER:
            bad = self._purchase(bad)
            bad.update(offer_id=f"no-such-offer-{self._serial}", coupon_code="NOPE-0000")
        elif kind is MalformedKind.SHOWN_UNKNOWN_OFFER:
            bad = {k: bad[k] for k in ("event_id", "user_id", "ts", "session_id")}
            bad.update(type="offer_shown", offer_id=f"no-such-offer-{self._serial}")
        elif kind is MalformedKind.UNICODE_TEXT:
            bad = {k: bad[k] for k in ("event_id", "user_id", "ts", "session_id")}
            # Accents, a symbol, an emoji, right-to-left script and a NUL character.
            text = "caf\u00e9 \u2603 \U0001f600 \u05e9\u05dc\u05d5\u05dd \u0000"
            bad.update(type="search", query=text)
        else:
            raise ValueError(f"no recipe for malformed kind {kind}")
        self._flood_sent.append(bad)
        return Message(user.encode(), orjson.dumps(bad), kind)

    @staticmethod
    def _purchase(bad: dict[str, Any]) -> dict[str, Any]:
        order = {k: bad[k] for k in ("event_id", "user_id", "ts", "session_id")}
        order.update(type="purchase", order_id=f"o-{bad['event_id']}", order_total=19.99)
        return order

"""Bad messages, mixed into the clickstream the way buggy producers would send them.

Every malformed message is an extra message next to a good event (the good stream stays
whole), made from that event so it looks plausible: same user, same time. ``EXPECTED_REASON``
says which dead-letter reason the engine should give each kind.

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
from typing import Any

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
}

_KINDS = tuple(MalformedKind)


@dataclass(frozen=True, slots=True)
class Message:
    """One clickstream message as produced: key and value bytes; ``malformed`` says if bad."""

    key: bytes
    value: bytes
    malformed: MalformedKind | None = None


class MalformedInjector:
    """Encodes good events and adds a malformed message after a ``share`` of them."""

    def __init__(self, share: float, run_id: str, seed: int) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"malformed share must be within 0..1, got {share}")
        self.share = share
        self.run_id = run_id
        self.counts: Counter[MalformedKind] = Counter()
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
        self._serial = 0

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
        return Message(key, orjson.dumps(bad), kind)

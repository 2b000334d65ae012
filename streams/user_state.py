"""Everything the engine keeps per user, and its compact serialised form.

The state lives in a Faust table keyed by user id (changelog-backed, so a restarted worker
recovers it). It is stored as raw bytes in our own compact JSON layout rather than through
Faust's codecs: one orjson call each way, and a layout we version ourselves.

>>> state = UserState.new(abandon_after_ms=1_800_000)
>>> state.features.update("view", ts=1_000, category="shoes")
>>> UserState.from_bytes(state.to_bytes(), abandon_after_ms=1_800_000).features.count("view", "1h")
1
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from streams.attribution import OpenDecision
from streams.errors import PromoError
from streams.features import NEVER, SlidingWindowFeatures

STATE_FORMAT = 1
WEEK_MS = 7 * 86_400_000


@dataclass(slots=True)
class UserState:
    features: SlidingWindowFeatures
    last_decision: int = NEVER
    #: Times of offers sent, or that the policy would have sent to a control user (contact caps).
    offer_times: list[int] = field(default_factory=list)
    open_decisions: list[OpenDecision] = field(default_factory=list)
    #: Partition the user's events arrive on; where their changelog entry belongs.
    partition: int = -1

    @classmethod
    def new(cls, abandon_after_ms: int) -> UserState:
        return cls(SlidingWindowFeatures(abandon_after_ms=abandon_after_ms))

    def record_contact(self, ts: int) -> None:
        self.offer_times = [t for t in self.offer_times if t > ts - WEEK_MS]
        self.offer_times.append(ts)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            [
                STATE_FORMAT,
                self.features.to_compact(),
                self.last_decision,
                self.offer_times,
                [d.to_compact() for d in self.open_decisions],
                self.partition,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes, abandon_after_ms: int) -> UserState:
        fmt, features, last_decision, offer_times, open_decisions, partition = orjson.loads(data)
        if fmt != STATE_FORMAT:
            raise PromoError(f"user state format {fmt} is not {STATE_FORMAT}: migrate the table")
        return cls(
            SlidingWindowFeatures.from_compact(features, abandon_after_ms),
            last_decision,
            offer_times,
            [OpenDecision.from_compact(row) for row in open_decisions],
            partition,
        )

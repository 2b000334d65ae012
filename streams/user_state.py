"""Everything the engine keeps per user, and its compact serialised form.

The state lives in a Faust table keyed by user id (changelog-backed, so a restarted worker
recovers it). It is stored as raw bytes in our own compact JSON layout rather than through
Faust's codecs: one orjson call each way, and a layout we version ourselves. Older formats
are read and upgraded, so a new worker can take over the changelog an older one wrote.

>>> state = UserState.new(abandon_after_ms=1_800_000)
>>> state.features.update("view", ts=1_000, category="shoes")
>>> UserState.from_bytes(state.to_bytes(), abandon_after_ms=1_800_000).features.count("view", "1h")
1
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import orjson

from streams.attribution import OpenDecision
from streams.errors import PromoError
from streams.features import NEVER, SlidingWindowFeatures

STATE_FORMAT = 2
WEEK_MS = 7 * 86_400_000
#: How many recent event ids a user's state remembers to drop a producer's duplicates.
RECENT_EVENT_IDS = 16


@dataclass(slots=True)
class UserState:
    features: SlidingWindowFeatures
    last_decision: int = NEVER
    #: Times of offers sent, or that the policy would have sent to a control user (contact caps).
    offer_times: list[int] = field(default_factory=list)
    open_decisions: list[OpenDecision] = field(default_factory=list)
    #: Partition the user's events arrive on; where their changelog entry belongs.
    partition: int = -1
    #: Offset of the last message of that partition folded into this state. After a crash the
    #: changelog can be ahead of the committed offsets: replayed messages are skipped.
    offset: int = -1
    #: CRC-32 of the last few event ids: a producer's retry (same event, new offset) is skipped.
    recent_events: list[int] = field(default_factory=list)

    def already_applied(self, partition: int, offset: int, event_id: str) -> bool:
        """True for a message this state has already folded in (replay or duplicate)."""
        if partition == self.partition and offset <= self.offset:
            return True
        return zlib.crc32(event_id.encode()) in self.recent_events

    def mark_applied(self, partition: int, offset: int, event_id: str) -> None:
        self.partition, self.offset = partition, offset
        self.recent_events.append(zlib.crc32(event_id.encode()))
        if len(self.recent_events) > RECENT_EVENT_IDS:
            del self.recent_events[0]

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
                self.offset,
                self.recent_events,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes, abandon_after_ms: int) -> UserState:
        fields = orjson.loads(data)
        if fields[0] == 1:
            fields += [-1, []]  # format 1 had no replay guard: start one from here
        elif fields[0] != STATE_FORMAT:
            raise PromoError(
                f"user state format {fields[0]} is newer than this worker's {STATE_FORMAT}: "
                "upgrade the worker"
            )
        _, features, last_decision, offer_times, open_decisions, partition, offset, recent = fields
        return cls(
            SlidingWindowFeatures.from_compact(features, abandon_after_ms),
            last_decision,
            offer_times,
            [OpenDecision.from_compact(row) for row in open_decisions],
            partition,
            offset,
            recent,
        )

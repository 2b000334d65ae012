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

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.attribution import OpenDecision
from streams.errors import PromoError
from streams.features import CART_MAX_AGE, DAY, NEVER, SlidingWindowFeatures
from streams.search_interest import SEARCHES_KEPT

#: Format 4 appends the user's group and its time to format 3, and its open decisions may
#: carry the abuse gate's flag (``OpenDecision.gated``, one element more). A state with
#: neither is still written as format 3, which the previous version reads: only shops that
#: send groups or turn the abuse gate on need every worker upgraded first. Format 5 is
#: format 4 whose open decisions may carry a category offer's target (``OpenDecision.target``,
#: one element more still), written only then: a worker of format 4 refuses it by its number,
#: where it would have failed on the row. Only catalogues with category offers need it.
#: Format 6 is format 5 with the user's latest searches without a category (``searches``),
#: written only while there are some: a worker of format 5 refuses it by its number.
STATE_FORMAT = 6
_FORMAT_WITH_TARGETS = 5
_FORMAT_WITH_GROUP = 4
_FORMAT_WITHOUT_GROUP = 3
#: Every format this worker reads. Named one by one rather than "up to STATE_FORMAT": a
#: corrupt or hand-written first field (0, -1, "4") must stop the worker, not be read as
#: the newest layout.
_READABLE_FORMATS = frozenset({1, 2, 3, 4, 5, 6})
WEEK_MS = 7 * 86_400_000
#: A producer's retry of an event is recognised when it comes within this much event time of
#: the user's latest event (producers retry within seconds or minutes; Kafka clients give up
#: after 2 minutes by default). Beyond it, the ClickHouse tables still store an event once.
DEDUP_HORIZON_MS = 3_600_000
#: At most this many event ids within the horizon are kept (a bound on the state's size; only
#: a user with more events than this in an hour can see a retry counted twice).
DEDUP_MAX_IDS = 128
#: A user idle this long in event time has nothing left that a feature, a cap or a window
#: reads: the longest window, the "hours since" cap and the cart's age limit are 30 days, and
#: a daily bucket can hold an event up to a day longer. Only category interest remains, decayed
#: to under 5 % (half-life 7 days). Such a user can leave the table: if they come back they
#: start again, as a new user would, with that same feature vector.
IDLE_EVICTION_MS = CART_MAX_AGE + DAY


def event_id_hash(event_id: str) -> int:
    """48 bits of BLAKE2b: one new event in ~2 * 10^12 would be mistaken for a kept one."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=6).digest(), "big")


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
    #: [hash of the event id, event time] of the events within ``DEDUP_HORIZON_MS`` of the
    #: latest: a producer's retry (same event, new offset) is skipped.
    recent_events: list[list[int]] = field(default_factory=list)
    #: The group the platform last sent for the user (``ClickEvent.group``), and the event
    #: time it came with: the latest by event time wins, as for every other feature.
    group: str = ""
    group_ts: int = NEVER
    #: [query, event time, waiting] of the user's latest searches without a category, newest
    #: last (``streams.search_interest``: read with the query model at each decision, never
    #: here); waiting is 1 while the newest has not yet been paired with the category the
    #: user looked at next, else 0.
    searches: list[list[str | int]] = field(default_factory=list)

    def evictable(self, now: int) -> bool:
        """Idle for ``IDLE_EVICTION_MS`` of event time ``now``, with no window left open."""
        return not self.open_decisions and now - self.features.watermark > IDLE_EVICTION_MS

    def first_time(self, partition: int, offset: int, event_id: str, ts: int) -> bool:
        """Record a message as folded in; False, recording nothing, for one this state
        already holds (a replay after a crash, or a producer's resend within the horizon)."""
        if partition == self.partition and offset <= self.offset:
            return False
        key = event_id_hash(event_id)
        if any(seen == key for seen, _ in self.recent_events):
            return False
        self.partition, self.offset = partition, offset
        since = max(self.features.watermark, ts) - DEDUP_HORIZON_MS
        recent = [entry for entry in self.recent_events if entry[1] >= since]
        recent.append([key, ts])
        self.recent_events = recent[-DEDUP_MAX_IDS:]
        return True

    @classmethod
    def new(cls, abandon_after_ms: int) -> UserState:
        return cls(SlidingWindowFeatures(abandon_after_ms=abandon_after_ms))

    def note_group(self, group: str | None, ts: int) -> None:
        if group is not None and ts >= self.group_ts:
            self.group, self.group_ts = group, ts

    def note_search(self, query: str, ts: int) -> None:
        """Keep a search without a category, waiting for the category looked at next; the
        one before it waits no more, and only the latest ``SEARCHES_KEPT`` stay."""
        if self.searches:
            self.searches[-1][2] = 0
        self.searches.append([query, ts, 1])
        del self.searches[:-SEARCHES_KEPT]

    def record_contact(self, ts: int) -> None:
        self.offer_times = [t for t in self.offer_times if t > ts - WEEK_MS]
        self.offer_times.append(ts)

    def to_bytes(self) -> bytes:
        targeted = any(d.target for d in self.open_decisions)
        extended = (
            bool(self.searches)
            or targeted
            or bool(self.group)
            or any(d.gated for d in self.open_decisions)
        )
        if self.searches:
            layout = STATE_FORMAT
        elif targeted:
            layout = _FORMAT_WITH_TARGETS
        else:
            layout = _FORMAT_WITH_GROUP if extended else _FORMAT_WITHOUT_GROUP
        fields = [
            layout,
            self.features.to_compact(),
            self.last_decision,
            self.offer_times,
            [d.to_compact() for d in self.open_decisions],
            self.partition,
            self.offset,
            self.recent_events,
        ]
        if extended:
            fields += [self.group, self.group_ts]
        if self.searches:
            fields.append(self.searches)
        # Copied to bytes of their own length: orjson (3.12 on) hands back its whole writing
        # buffer, 4 KB or more for a state of 1.2 KB, and the table keeps each state for
        # days. A million users' sweep after an outage, every state rewritten, took a worker
        # from 1.8 to 5 GB; the copy costs ~0.3 µs.
        return bytes(memoryview(orjson.dumps(fields)))

    @classmethod
    def from_bytes(cls, data: bytes, abandon_after_ms: int) -> UserState:
        fields = _fields(data)
        if fields[0] == 1:
            fields += [-1, []]  # format 1 had no replay guard: start one from here
        elif fields[0] == 2:
            fields[7] = []  # format 2 kept CRC-32s of the last 16 ids: start afresh
        if fields[0] < _FORMAT_WITH_GROUP:
            fields += ["", NEVER]  # no group sent yet
        if fields[0] < STATE_FORMAT:
            fields.append([])  # no search kept
        (
            _,
            features,
            last_decision,
            offer_times,
            open_decisions,
            partition,
            offset,
            recent,
            group,
            group_ts,
            searches,
        ) = fields
        return cls(
            SlidingWindowFeatures.from_compact(features, abandon_after_ms),
            last_decision,
            offer_times,
            [OpenDecision.from_compact(row) for row in open_decisions],
            partition,
            offset,
            recent,
            group,
            group_ts,
            searches,
        )


@dataclass(frozen=True, slots=True)
class StateSummary:
    """What the worker's index of open windows needs of a state (``agents.expiry``)."""

    partition: int
    #: The last clickstream offset the state applied (-1: none, or format 1)
    offset: int
    #: The user's latest event time
    watermark: int
    #: The earliest end of the user's open attribution windows; None without one
    due_at: int | None

    @classmethod
    def of(cls, data: bytes) -> StateSummary:
        """Read from the state's bytes without building the state (about half the cost):
        a worker taking partitions over reads every state it recovers so.

        >>> state = UserState.new(abandon_after_ms=1_800_000)
        >>> state.features.update("view", ts=1_000, category="shoes")
        >>> StateSummary.of(state.to_bytes())
        StateSummary(partition=-1, offset=-1, watermark=1000, due_at=None)
        """
        fields = _fields(data)
        open_decisions = fields[4]
        return cls(
            fields[5],
            fields[6] if fields[0] > 1 else -1,
            fields[1][0],
            min(row[2] for row in open_decisions) if open_decisions else None,
        )


def _fields(data: bytes) -> list[Any]:
    """The state's fields, in a format this worker reads."""
    fields: list[Any] = orjson.loads(data)
    if fields[0] not in _READABLE_FORMATS:
        raise PromoError(
            f"user state format {fields[0]!r} is not one this worker reads "
            f"({sorted(_READABLE_FORMATS)}): a newer worker wrote it, upgrade this one"
        )
    return fields

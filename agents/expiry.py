"""Which users have attribution windows to close, for users who do not come back.

A user's own next event closes their expired windows; a user who never returns needs the
sweep. The index is in memory and small (one entry per user with an open decision). It is
kept as the user-state table is: the hot path and the sweep tell it each state they save,
and changelog recovery each state it applies (``agents.state_store.UserStateTable``), read
from the state's bytes in half the time of a whole state. A worker taking partitions over has
then nothing to scan: a scan of a million users' table held its event loop 11 s.

The sweep runs on event time, with a watermark that one bad timestamp cannot drag forward:
each partition's clock is the *median* of the latest event times of the users in its latest
batch (seeded from the last states recovery applied on it), so a few producers with a clock
ahead cannot move it, and it follows the stream where it goes: a second run or a backfill of
older days gets its own clock rather than inheriting the newest time ever seen, which closed
its windows seconds after they opened. The worker's watermark is the *lowest* clock over its
partitions that have data, less an allowed lateness for purchases still on their way, and
never ahead of the wall clock (no real event happens in the future).
"""

from __future__ import annotations

import heapq
import logging
import statistics
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from streams.errors import PromoError
from streams.user_state import StateSummary, UserState

log = logging.getLogger(__name__)

#: A partition's clock after recovery is the median of the event times of the last states
#: recovery applied on it: about a batch of them, the states its latest batches saved.
RECOVERED_CLOCK_STATES = 1_000
#: The due queue is rebuilt from the index once it holds this many more entries than twice
#: the index (times since moved or removed, skipped as they come up).
QUEUE_SLACK = 10_000


@dataclass
class ExpiryIndex:
    #: user id -> earliest window end among their open decisions
    due_at: dict[str, int] = field(default_factory=dict)
    #: partition -> latest event time seen on it
    partition_watermarks: dict[int, int] = field(default_factory=dict)
    #: How far behind its partition's latest event a purchase may still arrive.
    allowed_lateness_ms: int = 0
    #: Partitions were assigned: once recovered, their clocks are seeded and the broker is
    #: checked before a window closes or an event is processed (``agents.clickstream``).
    taking_over: bool = True
    #: partition -> the last clickstream offset its states applied
    applied: dict[int, int] = field(default_factory=dict)
    #: partition -> event times of the last states recovery applied on it
    recovered_clocks: dict[int, deque[int]] = field(default_factory=dict)
    #: The keys the scan for idle users has still to look at (a snapshot of the table's).
    idle_scan: list[bytes] = field(default_factory=list)
    #: (due time, user) for each entry of ``due_at``, earliest first, and entries whose time
    #: has since moved or gone, skipped when they come up: a sweep finds the due users
    #: without walking the whole index (800,000 users with open windows took ~40 ms, every
    #: 5 s, from the hot path).
    _queue: list[tuple[int, str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._rebuild_queue()

    def track(self, user_id: str, state: UserState) -> None:
        """A state saved by the hot path or the sweep."""
        due_at = min(d.expires_at for d in state.open_decisions) if state.open_decisions else None
        self._note(user_id, due_at, state.partition, state.offset)

    def recovered(self, user_id: str, raw: bytes | None) -> None:
        """A user's state (None: deleted) as changelog recovery applied it to the table."""
        if raw is None:
            self.due_at.pop(user_id, None)
            return
        try:
            state = StateSummary.of(raw)
        except PromoError as exc:  # the user's own events will fail loudly; recovery goes on
            log.error("unreadable state of user %r: %s", user_id, exc)
            return
        self._note(user_id, state.due_at, state.partition, state.offset)
        clock = self.recovered_clocks.get(state.partition)
        if clock is None:
            clock = self.recovered_clocks[state.partition] = deque(maxlen=RECOVERED_CLOCK_STATES)
        clock.append(state.watermark)

    def take_over(self) -> dict[int, int]:
        """Recovery ended: seed the clocks of the partitions it read; returns the last
        clickstream offset the states applied, per partition."""
        for partition, times in self.recovered_clocks.items():
            self.partition_watermarks[partition] = int(statistics.median_low(times))
        self.recovered_clocks.clear()
        self.taking_over = False
        return dict(self.applied)

    def advance(self, latest_event_times: dict[int, list[int]]) -> None:
        """Set each partition's clock from its users' latest event times in one batch."""
        for partition, times in latest_event_times.items():
            if times:
                self.partition_watermarks[partition] = int(statistics.median_low(times))

    def watermark(self, partitions: set[int], wall_clock_ms: int) -> int:
        """Event time up to which windows may close on ``partitions`` (-1: none yet).

        Partitions without data hold no users, hence no windows: they do not hold it back.
        """
        marks = [self.partition_watermarks[p] for p in partitions if p in self.partition_watermarks]
        if not marks:
            return -1
        return min(min(marks) - self.allowed_lateness_ms, wall_clock_ms)

    def keys_to_check(self, table_keys: Callable[[], Iterable[bytes]], n: int) -> list[bytes]:
        """The next ``n`` keys of a pass over the table for idle users; a pass ended, the next
        starts from a new snapshot of its keys."""
        if not self.idle_scan:
            self.idle_scan = list(table_keys())
        taken = self.idle_scan[-n:]
        del self.idle_scan[-n:]
        return taken

    def take_due(self, now: int, most: int) -> list[str]:
        """Up to ``most`` users whose earliest window ended by event time ``now``, earliest
        first, taken out of the index: the sweep tracks each again once it has closed their
        windows (a user not found, or moved to another worker, stays out)."""
        taken: list[str] = []
        queue = self._queue
        while queue and queue[0][0] <= now and len(taken) < most:
            due_at, user_id = heapq.heappop(queue)
            if self.due_at.get(user_id) == due_at:
                del self.due_at[user_id]
                taken.append(user_id)
        return taken

    def _note(self, user_id: str, due_at: int | None, partition: int, offset: int) -> None:
        """A user's earliest window end (None: no window open) and what their state applied."""
        if offset > self.applied.get(partition, -1):
            self.applied[partition] = offset
        if due_at is None:
            self.due_at.pop(user_id, None)
        elif self.due_at.get(user_id) != due_at:  # most saves of the hot path change nothing
            self.due_at[user_id] = due_at
            heapq.heappush(self._queue, (due_at, user_id))
            if len(self._queue) > 2 * len(self.due_at) + QUEUE_SLACK:
                self._rebuild_queue()

    def _rebuild_queue(self) -> None:
        self._queue = [(t, u) for u, t in self.due_at.items()]
        heapq.heapify(self._queue)


#: A partition with messages waiting that the agent has not advanced on for this long is
#: stalled. (Faust commits and fetches every few seconds; a rebalance takes well under this.)
STALL_SECONDS = 60.0

#: How a partition is named: its number (the hot path reads one topic) or a topic-partition
#: (the sinks read several).
P = TypeVar("P", bound=Hashable)


@dataclass
class PartitionProgress(Generic[P]):
    """Where a consumer got on each partition, and when it last moved: a partition the
    consumer stops delivering must not stall its users (hot path) or its rows (sinks) in
    silence."""

    #: partition -> (last offset the agent received, monotonic time it moved)
    last: dict[P, tuple[int, float]] = field(default_factory=dict)
    #: partition -> times it was found stalled and resumed since it last moved
    stalls: dict[P, int] = field(default_factory=dict)
    stall_seconds: float = STALL_SECONDS

    def seen(self, partition: P, offset: int, now: float) -> None:
        if offset > self.last.get(partition, (-1, 0.0))[0]:
            self.last[partition] = (offset, now)
            self.stalls.pop(partition, None)

    def away(self, seconds: float) -> None:
        """The consumer was not asked for records for ``seconds`` (its reader was busy, e.g.
        retrying a write through an outage): nothing could be delivered meanwhile, so that
        time does not count towards a stall."""
        self.last = {p: (offset, moved + seconds) for p, (offset, moved) in self.last.items()}

    def judge(
        self,
        quiet: dict[P, int],
        ends: dict[P, int],
        committed: dict[P, int],
        now: float,
        commits: bool = False,
    ) -> dict[P, tuple[str, int]]:
        """What to do about each quiet partition, given where its log ``ends`` and the
        group's ``committed`` offset: ``idle`` (read to its end: nothing waits), ``resume``
        (messages wait: a first stall), ``uncommitted`` (with ``commits``: the consumer got
        messages the group's committed offset stays behind, a first stall), or ``stop``
        (still stalled a period after either), with the offset the agent expects. A
        partition found idle or stalled a first time is given another period.
        """
        verdicts = {}
        for partition, next_offset in quiet.items():
            # Nothing received since the partition was assigned: the group's committed offset
            # says where the consumer stands; a log that ends there, give or take one, is
            # simply read to its end.
            done = committed.get(partition)
            expected = max(next_offset, done or 0)
            # The hot path commits what it processed within seconds (Faust, every few
            # seconds). A crashes chaos run had the agent process a partition to its end
            # while the group's offset stayed 14k messages behind for minutes, unreported:
            # read to its end, it was judged idle. Offsets the consumer got and the group
            # never committed are a stall too (its restart reads them again).
            behind = commits and next_offset > (done or 0) + 1
            if ends.get(partition, 0) <= expected + 1 and not behind:
                verdict = "idle"
            elif self.stalls.get(partition, 0) >= 1:
                verdict = "stop"
            else:
                verdict = "uncommitted" if ends.get(partition, 0) <= expected + 1 else "resume"
                self.stalls[partition] = self.stalls.get(partition, 0) + 1
            if verdict != "stop":
                self.last[partition] = (expected - 1, now)
            verdicts[partition] = (verdict, expected)
        return verdicts

    def quiet(self, owned: set[P], now: float) -> dict[P, int]:
        """Owned partitions without progress for ``stall_seconds``: partition -> the next
        offset the agent expects (0 if it never received one). Whether messages wait there
        is for the caller to ask the broker."""
        quiet = {}
        for partition in owned:
            offset, moved = self.last.setdefault(partition, (-1, now))
            if now - moved > self.stall_seconds:
                quiet[partition] = offset + 1
        return quiet

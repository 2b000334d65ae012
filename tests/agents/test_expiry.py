"""The sweep's watermark: one bad timestamp must not close everybody's attribution windows."""

from __future__ import annotations

from agents.expiry import QUEUE_SLACK, STALL_SECONDS, ExpiryIndex, PartitionProgress
from streams.attribution import OpenDecision
from streams.user_state import UserState

HOUR = 3_600_000
NOW = 1_800_000_000_000


def test_watermark_is_the_slowest_partition_and_never_ahead_of_the_clock() -> None:
    index = ExpiryIndex(allowed_lateness_ms=0)
    # Partition 1's batch holds one user whose producer's clock is two days ahead.
    index.advance({0: [NOW - 3 * HOUR], 1: [NOW - 2 * HOUR, NOW - 2 * HOUR, NOW + 49 * HOUR]})
    assert index.watermark({0, 1}, wall_clock_ms=NOW) == NOW - 3 * HOUR
    index.advance({0: [NOW + 49 * HOUR], 1: [NOW + 49 * HOUR]})
    assert index.watermark({0, 1}, wall_clock_ms=NOW) == NOW  # capped by the wall clock
    # Partition 2 has no data, hence no users with windows: it does not stall the others.
    assert index.watermark({0, 1, 2}, wall_clock_ms=NOW) == NOW
    assert index.watermark({2}, wall_clock_ms=NOW) == -1


def test_windows_close_only_after_the_allowed_lateness() -> None:
    index = ExpiryIndex(allowed_lateness_ms=10 * 60_000)
    index.advance({0: [NOW - HOUR]})
    assert index.watermark({0}, wall_clock_ms=NOW) == NOW - HOUR - 10 * 60_000


def test_due_users_are_taken_earliest_first_at_their_latest_due_time() -> None:
    index = ExpiryIndex(due_at={"a": NOW, "b": NOW + HOUR, "c": NOW - HOUR})
    index.track("b", _with_window_ending(NOW - 2 * HOUR))  # a window ending earlier: due now
    index.track("c", _with_window_ending(NOW + 2 * HOUR))  # closed; the next ends later
    assert index.take_due(NOW, 1) == ["b"]
    assert index.take_due(NOW, 10) == ["a"]  # not "c", nor "b" again: taken out of the index
    assert index.take_due(NOW + 2 * HOUR, 10) == ["c"]
    assert index.due_at == {}


def test_the_due_queue_does_not_grow_with_the_hot_paths_saves() -> None:
    index = ExpiryIndex()
    for i in range(3 * QUEUE_SLACK):
        index.track("a", _with_window_ending(NOW + i))  # a new time at each save
        index.track("b", _with_window_ending(NOW))  # the same time at each save
    assert len(index._queue) <= 2 * len(index.due_at) + QUEUE_SLACK
    assert index.take_due(NOW + 3 * QUEUE_SLACK, 10) == ["b", "a"]


def _with_window_ending(expires_at: int) -> UserState:
    state = UserState.new(abandon_after_ms=HOUR)
    state.open_decisions = [OpenDecision("d", 0, expires_at, "none", None, None, False, (), 1)]
    return state


def test_a_replay_of_older_days_gets_its_own_clock() -> None:
    # Run 1 reached NOW; run 2 replays the day before. Its windows must close on its own
    # time, not at once because run 1 once got further.
    index = ExpiryIndex(allowed_lateness_ms=0)
    index.advance({0: [NOW, NOW - HOUR]})
    index.advance({0: [NOW - 30 * HOUR, NOW - 29 * HOUR, NOW - 31 * HOUR]})
    assert index.watermark({0}, wall_clock_ms=NOW) == NOW - 30 * HOUR


def test_a_partition_without_progress_is_quiet_after_the_stall_period() -> None:
    progress = PartitionProgress()
    progress.seen(0, 41, now=100.0)
    progress.seen(1, 7, now=100.0)
    progress.seen(0, 40, now=150.0)  # an older offset (a replay) is no progress
    assert progress.quiet({0, 1, 2}, now=100.0 + STALL_SECONDS) == {}
    # Partition 2 was never received: its clock started at the first look.
    assert progress.quiet({0, 1, 2}, now=101.0 + STALL_SECONDS) == {0: 42, 1: 8}
    progress.seen(1, 9, now=130.0 + STALL_SECONDS)
    assert progress.quiet({0, 1, 2}, now=101.0 + 2 * STALL_SECONDS) == {0: 42, 2: 0}


def test_a_stalled_partition_is_resumed_once_then_stops_the_worker_and_an_idle_one_is_left() -> (
    None
):
    progress = PartitionProgress()
    progress.seen(0, 41, now=0.0)
    progress.seen(1, 6, now=0.0)
    now = 1.0 + STALL_SECONDS
    quiet = progress.quiet({0, 1, 2}, now)
    assert quiet == {0: 42, 1: 7}
    # 0 is read to its end; 1 has 83 messages waiting; 2 was never received but the group's
    # committed offset is one short of its end (Faust commits the offset to read next).
    verdicts = progress.judge({**quiet, 2: 0}, {0: 42, 1: 90, 2: 13}, {2: 12}, now)
    assert verdicts == {0: ("idle", 42), 1: ("resume", 7), 2: ("idle", 12)}
    # Each is given another period before it is looked at again.
    assert progress.quiet({0, 1, 2}, now + STALL_SECONDS) == {}
    later = now + 2 * STALL_SECONDS
    assert progress.judge(progress.quiet({1}, later), {1: 90}, {}, later) == {1: ("stop", 7)}
    # Progress after a resume clears the stall: the next quiet period resumes again first.
    progress.seen(1, 7, now=later)
    again = later + 2 * STALL_SECONDS
    assert progress.judge(progress.quiet({1}, again), {1: 90}, {}, again) == {1: ("resume", 8)}


def test_time_the_reader_was_away_does_not_count_towards_a_stall() -> None:
    progress = PartitionProgress[str](stall_seconds=10.0)  # any partition name: "topic[n]"
    progress.seen("a[0]", 5, now=0.0)
    progress.away(30.0)  # the reader was writing, not asking for records
    assert progress.quiet({"a[0]"}, now=35.0) == {}
    assert progress.quiet({"a[0]"}, now=41.0) == {"a[0]": 6}
    assert progress.judge({"a[0]": 6}, {"a[0]": 9}, {}, now=41.0) == {"a[0]": ("resume", 6)}


def test_a_partition_processed_but_not_committed_by_the_group_is_a_stall() -> None:
    # The crashes chaos run (ce5aef01): the hot path processed clickstream[3] to its last
    # message (50,839) within seconds, and the group's committed offset stayed at 36,251 for
    # five minutes; Tansu's ListOffsets said the log ends at 50,721. Judged "idle" (read to
    # its end), it was never reported.
    progress = PartitionProgress()
    progress.seen(3, 50_839, now=0.0)
    progress.seen(2, 49_648, now=0.0)
    now = 1.0 + STALL_SECONDS
    quiet = progress.quiet({2, 3}, now)
    verdicts = progress.judge(quiet, {2: 49_625, 3: 50_721}, {2: 49_649, 3: 36_251}, now, True)
    assert verdicts == {2: ("idle", 49_649), 3: ("uncommitted", 50_840)}
    later = now + 2 * STALL_SECONDS
    assert progress.judge(progress.quiet({3}, later), {3: 50_721}, {3: 36_251}, later, True) == {
        3: ("stop", 50_840)
    }
    # The sinks' watchdog does not ask for it: its partitions are judged as before.
    assert PartitionProgress().judge({3: 50_840}, {3: 50_721}, {3: 36_251}, now) == {
        3: ("idle", 50_840)
    }

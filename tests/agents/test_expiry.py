"""The sweep's watermark: one bad timestamp must not close everybody's attribution windows."""

from __future__ import annotations

from agents.expiry import ExpiryIndex

HOUR = 3_600_000
NOW = 1_800_000_000_000


def test_watermark_is_the_slowest_partition_and_never_ahead_of_the_clock() -> None:
    index = ExpiryIndex()
    index.advance(0, NOW - 3 * HOUR)
    index.advance(1, NOW - 2 * HOUR)
    index.advance(1, NOW + 49 * HOUR)  # one event from a producer whose clock is two days ahead
    assert index.watermark({0, 1}, wall_clock_ms=NOW) == NOW - 3 * HOUR
    index.advance(0, NOW + 49 * HOUR)
    assert index.watermark({0, 1}, wall_clock_ms=NOW) == NOW  # capped by the wall clock
    assert index.watermark({0, 1, 2}, wall_clock_ms=NOW) == -1  # partition 2 has said nothing


def test_due_users() -> None:
    index = ExpiryIndex(due_at={"a": NOW, "b": NOW + HOUR})
    assert index.due(NOW) == ["a"]

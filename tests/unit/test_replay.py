from __future__ import annotations

from pathlib import Path

import orjson

from promo.replay import (
    DAY_MS,
    ReplayMessage,
    latest_ts,
    read_lines,
    replay,
    shift_to_now,
    to_message,
)

HOUR_MS = 3_600_000


def event(user: str, ts: int, **extra: object) -> bytes:
    return orjson.dumps(
        {"event_id": f"{user}-{ts}", "user_id": user, "ts": ts, "type": "view", **extra}
    )


def test_a_recorded_file_is_sent_in_order_keyed_by_user_and_nothing_is_dropped(
    tmp_path: Path,
) -> None:
    lines = [event("u1", 1_000), b"{broken", b"", event("u2", 2_000), b'["not", "an object"]']
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\n")
    sent: list[ReplayMessage] = []
    summary = replay((to_message(line) for line in read_lines(path)), sent.append)
    # Every non-empty line goes out, in file order; the bad ones unkeyed, for the dead letters.
    assert [m.value for m in sent] == [line for line in lines if line]
    assert [m.key for m in sent] == [b"u1", None, b"u2", None]
    assert (summary.sent, summary.unreadable) == (4, 2)
    assert (summary.first_ts, summary.last_ts) == (1_000, 2_000)


def test_shifting_to_now_moves_every_event_by_the_same_whole_days() -> None:
    old = [event("u1", 5 * DAY_MS + 7 * HOUR_MS), event("u1", 5 * DAY_MS + 9 * HOUR_MS + 1)]
    now = 200 * DAY_MS + 2 * HOUR_MS
    shift = shift_to_now(latest_ts(iter(old)) or 0, now)
    moved = [to_message(line, shift) for line in old]
    times = [orjson.loads(m.value)["ts"] for m in moved]
    assert shift % DAY_MS == 0
    assert now - DAY_MS < times[1] <= now  # the newest within the last day
    assert times[1] - times[0] == 2 * HOUR_MS + 1  # relative timing kept
    assert (times[0] % DAY_MS) == 7 * HOUR_MS  # and the hour of day (the budget's pacing)
    assert [m.ts for m in moved] == times


def test_recorded_pace_waits_for_each_events_time_sped_up() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    messages = [to_message(event("u1", ts)) for ts in (0, 60_000, 60_000, 180_000)]
    replay(iter(messages), lambda m: None, speed=60.0, clock=lambda: now[0], sleep=sleep)
    assert waits == [1.0, 2.0]  # a minute of history per second

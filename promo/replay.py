"""Backtest a shop's own history: a recorded event file through the same pipeline.

``promo replay FILE`` sends a JSON-lines file of clickstream events (the event contract,
``schemas/json/clickstream-event.schema.json``, one object per line) to the clickstream topic,
keyed by ``user_id`` as the platform would, in file order. The workers do the rest: the same
validation, features, decisions, attribution and ClickHouse rows as for live traffic.

- **Nothing is dropped here.** A line that is not a JSON object with a string ``user_id``
  is sent as it is, without a key, and the workers put it in the dead letters with the
  reason, like any bad input. Empty lines are skipped.
- **Time.** The workers reject events older than ``PROMO_MAX_EVENT_AGE_DAYS`` (90) behind
  their Kafka timestamp, which is the time of sending. ``--shift-to-now`` moves every event by
  the same whole number of days so that the newest lands within the last day: windows,
  cool-downs and contact caps keep their relative timing, and hours of the day (the budget's
  pacing) stay what they were. The shift is printed.
- **Pace.** As fast as the broker takes them (``--rate`` caps events per second), or at the
  recorded pace sped up ``--speed`` times (60: an hour of history in a minute).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class ReplayMessage:
    key: bytes | None
    value: bytes
    #: The event's time after any shift (None: not an event the replay could read)
    ts: int | None


def read_lines(path: Path) -> Iterator[bytes]:
    """The file's non-empty lines, without their line break."""
    with path.open("rb") as lines:
        for line in lines:
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield line


def latest_ts(lines: Iterator[bytes]) -> int | None:
    """The newest integer ``ts`` among the lines that are JSON objects."""
    latest = None
    for line in lines:
        ts = _field(line, "ts")
        if isinstance(ts, int) and (latest is None or ts > latest):
            latest = ts
    return latest


def shift_to_now(latest: int, now_ms: int) -> int:
    """Whole days (ms) that bring ``latest`` into the day before ``now_ms``.

    >>> shift_to_now(latest=10 * DAY_MS + 5, now_ms=40 * DAY_MS + 7) // DAY_MS
    30
    >>> shift_to_now(latest=40 * DAY_MS, now_ms=40 * DAY_MS + 3)  # already recent
    0
    """
    return max(0, (now_ms - latest) // DAY_MS) * DAY_MS


def to_message(line: bytes, shift_ms: int = 0) -> ReplayMessage:
    """One line as the platform would have sent it: keyed by its user, its time shifted.

    >>> m = to_message(b'{"event_id": "e1", "user_id": "u7", "ts": 1000, "type": "view"}', 5)
    >>> m.key, m.ts, orjson.loads(m.value)["ts"]
    (b'u7', 1005, 1005)
    >>> to_message(b"not json")
    ReplayMessage(key=None, value=b'not json', ts=None)
    """
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return ReplayMessage(None, line, None)
    if not isinstance(event, dict) or not isinstance(event.get("user_id"), str):
        return ReplayMessage(None, line, None)
    ts = event.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        return ReplayMessage(event["user_id"].encode(), line, None)
    if shift_ms:
        event["ts"] = ts + shift_ms
        line = orjson.dumps(event)
    return ReplayMessage(event["user_id"].encode(), line, ts + shift_ms)


def _field(line: bytes, name: str) -> Any:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return event.get(name) if isinstance(event, dict) else None


@dataclass
class ReplaySummary:
    sent: int = 0
    #: Lines sent as they are (no user or no time): the workers will tell why.
    unreadable: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    shift_days: int = 0
    wall_seconds: float = 0.0

    def format(self) -> str:
        span = ""
        if self.first_ts is not None and self.last_ts is not None:
            span = f", event time {_iso(self.first_ts)} .. {_iso(self.last_ts)}"
        shifted = f" (shifted by {self.shift_days} days)" if self.shift_days else ""
        return (
            f"replayed {self.sent} messages in {self.wall_seconds:.1f} s{span}{shifted}; "
            f"{self.unreadable} not readable as events, sent as they are (see promo dead-letters)"
        )


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts / 1000)) + " UTC"


def replay(
    messages: Iterator[ReplayMessage],
    send: Callable[[ReplayMessage], None],
    *,
    rate: float | None = None,
    speed: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplaySummary:
    """Send every message in order, at most ``rate`` per second, or at the recorded pace
    ``speed`` times faster (events' times relative to the first event's)."""
    summary = ReplaySummary()
    began = clock()
    for message in messages:
        if message.ts is None:
            summary.unreadable += 1
        else:
            if summary.first_ts is None:
                summary.first_ts = message.ts
            if speed:
                wait = began + (message.ts - summary.first_ts) / 1000 / speed - clock()
                if wait > 0.001:
                    sleep(wait)
            summary.last_ts = (
                message.ts if summary.last_ts is None else max(summary.last_ts, message.ts)
            )
        if rate:
            wait = began + summary.sent / rate - clock()
            if wait > 0.001:
                sleep(wait)
        send(message)
        summary.sent += 1
    summary.wall_seconds = clock() - began
    return summary

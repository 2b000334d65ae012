"""The statistics of ``promo bench``, pure: plain numbers in, plain numbers out.

Every summary names its unit in its keys (``_ms``, ``_bytes``, ``events_per_s``), so the JSON
the bench prints reads without a legend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

LATENCY_PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile: the smallest value with at least ``q`` % of the
    values at or below it (always an observed value, never an interpolation).

    >>> percentile([5, 1, 4, 2, 3], 50), percentile(range(1, 101), 95), percentile([7], 99)
    (3, 95, 7)
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} outside (0, 100]")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50 / p95 / p99 and max of latencies in milliseconds (None without any).

    >>> latency_summary([120, 80, 100, 300])
    {'n': 4, 'p50_ms': 100, 'p95_ms': 300, 'p99_ms': 300, 'max_ms': 300}
    >>> latency_summary([])["p99_ms"] is None
    True
    """
    summary: dict[str, float | int | None] = {"n": len(latencies_ms)}
    for q in LATENCY_PERCENTILES:
        summary[f"p{q}_ms"] = percentile(latencies_ms, q) if latencies_ms else None
    summary["max_ms"] = max(latencies_ms) if latencies_ms else None
    return summary


def size_summary(sizes: Sequence[int]) -> dict[str, float | int | None]:
    """Count, mean, p95 and max of byte sizes.

    >>> size_summary([400, 600, 1100, 900])
    {'users': 4, 'mean_bytes': 750.0, 'p95_bytes': 1100, 'max_bytes': 1100}
    """
    if not sizes:
        return {"users": 0, "mean_bytes": None, "p95_bytes": None, "max_bytes": None}
    return {
        "users": len(sizes),
        "mean_bytes": round(sum(sizes) / len(sizes), 1),
        "p95_bytes": percentile(sizes, 95),
        "max_bytes": max(sizes),
    }


def events_per_second(events: int, seconds: float) -> float:
    """Throughput, rounded to whole events per second.

    >>> events_per_second(30_000, 12.0)
    2500.0
    """
    if seconds <= 0:
        raise ValueError(f"throughput over {seconds} s")
    return round(events / seconds, 0)


def us_per_event(seconds: float, events: int) -> float:
    """Microseconds per event, to a tenth.

    >>> us_per_event(2.92, 10_000)
    292.0
    """
    if events <= 0:
        raise ValueError("cost per event of no events")
    return round(seconds * 1e6 / events, 1)


class RunRates:
    """Throughput and CPU per event of a run that read ``events`` in ``seconds`` of wall time
    using ``cpu_seconds`` of CPU (a mixin for the figures' dataclasses)."""

    events: int
    seconds: float
    cpu_seconds: float

    @property
    def events_per_s(self) -> float:
        return events_per_second(self.events, self.seconds)

    @property
    def cpu_us_per_event(self) -> float:
        return us_per_event(self.cpu_seconds, self.events)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` to three decimals; None when the denominator is 0.

    >>> ratio(2_700, 7_450), ratio(1, 0)
    (0.362, None)
    """
    return round(numerator / denominator, 3) if denominator else None


def output_latencies(
    sent_ms: Mapping[str, int], outputs: Iterable[tuple[str, int]], since_ms: int = 0
) -> list[tuple[int, int]]:
    """(send time, latency) in milliseconds of each output whose triggering event was sent:
    the latency runs from the event's send time to the output's Kafka timestamp.
    ``outputs``: (triggering event id, output timestamp); outputs of events not in
    ``sent_ms`` (an earlier backlog) or sent before ``since_ms`` (the warm-up) are left out.

    >>> output_latencies({"e1": 1_000, "e2": 2_000}, [("e1", 1_450), ("e0", 9), ("e2", 2_300)])
    [(1000, 450), (2000, 300)]
    >>> output_latencies({"e1": 1_000, "e2": 2_000}, [("e1", 1_450), ("e2", 2_300)], 1_500)
    [(2000, 300)]
    """
    return [
        (sent_ms[event_id], ts - sent_ms[event_id])
        for event_id, ts in outputs
        if event_id in sent_ms and sent_ms[event_id] >= since_ms
    ]


def median_by_window(
    latencies: Iterable[tuple[int, int]], start_ms: int, window_ms: int
) -> list[float | None]:
    """p50 latency of the events sent in each ``window_ms`` from ``start_ms`` (None for a
    window without any): whether latency held steady through a phase or kept growing.

    >>> median_by_window([(0, 400), (500, 600), (1_200, 900), (3_100, 950)], 0, 1_000)
    [400, 900, None, 950]
    """
    windows: dict[int, list[int]] = {}
    for sent, latency in latencies:
        windows.setdefault((sent - start_ms) // window_ms, []).append(latency)
    last = max(windows, default=-1)
    return [percentile(windows[w], 50) if w in windows else None for w in range(last + 1)]


def latest_value_sizes(records: Iterable[tuple[bytes | None, bytes | None]]) -> dict[bytes, int]:
    """Size of the latest value per key of a changelog, in log order; a tombstone (no value)
    deletes its key.

    >>> latest_value_sizes([(b"u1", b"abc"), (b"u2", b"x"), (b"u1", b"abcdef"), (b"u2", None)])
    {b'u1': 6}
    """
    sizes: dict[bytes, int] = {}
    for key, value in records:
        if key is None:
            continue
        if value is None:
            sizes.pop(key, None)
        else:
            sizes[key] = len(value)
    return sizes

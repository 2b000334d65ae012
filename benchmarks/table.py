"""The README's speed table, generated from the JSON ``promo bench`` printed.

``promo bench > bench.json && python -m benchmarks.table bench.json``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

STAGE_NAMES = {
    "validation": "validation",
    "state_decode": "state decode",
    "features": "features",
    "models": "models",
    "policy": "policy",
    "attribution": "attribution",
    "engine_other": "other engine work",
    "state_encode": "state encode",
    "produce_encode": "outputs encoded",
    "learning": "learning",
    "sink_rows": "sink rows",
}


def _n(value: float | int | None, digits: int = 0) -> str:
    """A figure with thousands separators ("n/a" for None).

    >>> _n(4328.0), _n(1.4, 1), _n(None)
    ('4,328', '1.4', 'n/a')
    """
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _latency(summary: dict[str, Any]) -> str:
    quantiles = " / ".join(_n(summary[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))
    return f"{quantiles} ms (n = {_n(summary['n'])})"


def _trend(values: list[float | None]) -> str:
    return ", ".join(_n(x) for x in values)


def _servers(figures: dict[str, Any]) -> str:
    return (
        f"broker {_n(figures.get('broker_cpu_us_per_event'), 1)} µs, "
        f"ClickHouse {_n(figures.get('clickhouse_cpu_us_per_event'), 1)} µs"
    )


def _latency_rows(lat: dict[str, Any]) -> list[tuple[str, str, str]]:
    share = lat["share_of_pipeline_rate"]
    rate = f"{_n(lat['rate_events_per_s'])} events/s ({share:g} of the pipeline's)"
    return [
        (
            f"event → decision at {rate}, p50 / p95 / p99 / max",
            _latency(lat["event_to_decision"]),
            f"p50 per 10 s of sending: {_trend(lat['event_to_decision_p50_ms_per_10_s'])} ms; "
            f"drained {_n(lat['drain_seconds_after_last_send'], 1)} s after the last send",
        ),
        (
            f"event → offer at {_n(lat['rate_events_per_s'])} events/s",
            _latency(lat["event_to_offer"]),
            f"worker {lat['worker_cpu_share_of_a_core']} of a core, broker "
            f"{lat.get('broker_cpu_share_of_a_core')}, ClickHouse "
            f"{lat.get('clickhouse_cpu_share_of_a_core')}, the bench's sender "
            f"{lat['sender_cpu_share_of_a_core']}; "
            f"{lat['state_writes_per_event']} state writes per event",
        ),
    ]


def markdown_table(bench: dict[str, Any]) -> str:
    """The table of every figure, with the command and machine that measured them."""
    t, f, p, two = (
        bench["transport_ceiling"],
        bench["framework_ceiling"],
        bench["pipeline"],
        bench["two_workers"],
    )
    apart = bench["sinks_apart"]
    r, s = bench["ratios"], bench["stages"]
    state, mem, m = bench["state_bytes_per_user"], bench["memory_1m_users"], bench["machine"]
    stages = ", ".join(
        f"{name} {_n(s['us_per_event'][key], 1)}" for key, name in STAGE_NAMES.items()
    )
    rows = [
        (
            "transport ceiling: plain aiokafka consumer, decode",
            f"{_n(t['events_per_s'])} events/s",
            f"{_n(t['cpu_us_per_event'], 1)} µs CPU/event",
        ),
        (
            "framework ceiling: Faust worker, decode + acknowledge",
            f"{_n(f['events_per_s'])} events/s",
            f"{_n(f['cpu_us_per_event'], 1)} µs CPU/event",
        ),
        (
            "full pipeline, 1 worker, until every event and decision is in ClickHouse",
            f"{_n(p['events_per_s'])} events/s",
            f"{_n(p['cpu_us_per_event'], 1)} µs CPU/event in the worker; {_servers(p)}; "
            f"hot path alone {_n(p['hot_path_events_per_s'])} events/s; "
            f"{p['state_writes_per_event']} state writes per event",
        ),
        (
            "ratios",
            f"pipeline / framework {r['pipeline_to_framework']}",
            f"framework / transport {r['framework_to_transport']}, pipeline / transport "
            f"{r['pipeline_to_transport']}",
        ),
        (
            "2 workers, one group, same backlog",
            f"{_n(two['events_per_s'])} events/s",
            f"{two['ratio_to_one_worker']} times one worker's; "
            f"{_n(two['cpu_us_per_event'], 1)} µs CPU/event in the workers; {_servers(two)}",
        ),
        (
            "1 worker that only decides, sinks in a `promo sinks` process",
            f"{_n(apart['events_per_s'])} events/s",
            f"{apart['ratio_to_one_worker']} times the in-worker sinks', "
            f"{apart['ratio_to_framework']} of the framework ceiling; "
            f"{_n(apart['cpu_us_per_event'], 1)} µs CPU/event in the worker, "
            f"{_n(apart['sinks_process_cpu_us_per_event'], 1)} in the sinks; {_servers(apart)}",
        ),
        (
            "per stage, in process (µs/event)",
            f"{_n(s['total_plain_cpu_us_per_event'], 1)} µs CPU/event in all",
            f"{stages}; {r['stages_cpu_to_pipeline_cpu']} of the worker's CPU per event",
        ),
        *_latency_rows(bench["latency_at_quarter_rate"]),
        *_latency_rows(bench["latency"]),
        (
            "state per user (changelog, latest value per key)",
            f"mean {_n(state['mean_bytes'])} B",
            f"p95 {_n(state['p95_bytes'])} B, max {_n(state['max_bytes'])} B "
            f"({_n(state['users'])} users)",
        ),
        (
            f"a worker taking {_n(mem['users'])} users over, {_n(mem['due_windows'])} of "
            "their windows due: RSS once ready",
            f"{_n(mem['rss_mb'])} MB",
            f"peak {_n(mem['rss_mb_peak'])} MB; ready {_n(mem['ready_seconds'], 1)} s after "
            f"start; every due window closed {_n(mem['sweep_seconds'], 1)} s after ready; "
            f"event loop unanswering at most {mem['loop_stall_seconds_before_ready']} s before "
            f"ready, {mem['loop_stall_seconds_after_ready']} s after",
        ),
    ]
    lines = [
        f"`{bench['command']}` on {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"{_n(bench['traffic']['events'])} simulated events of {_n(bench['traffic']['users'])} "
        f"users, {_n(bench['seconds'])} s in all:",
        "",
        "| figure | value | detail |",
        "|---|---|---|",
        *(f"| {a} | {b} | {c} |" for a, b, c in rows),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table", description=__doc__)
    parser.add_argument("bench_json", help="the output of promo bench")
    args = parser.parse_args(argv)
    with open(args.bench_json, encoding="utf-8") as f:
        print(markdown_table(json.load(f)))


if __name__ == "__main__":
    main()

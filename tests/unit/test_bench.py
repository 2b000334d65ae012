"""``promo bench`` without servers: its statistics, the in-process stage timing on a tiny
input, and the JSON it prints, which must hold every figure the issue asks for."""

from __future__ import annotations

import doctest
import importlib
import zlib
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import streams.batch
from benchmarks.bench import Measured, Options, report
from benchmarks.ceilings import Ceiling
from benchmarks.figures import latency_summary, output_latencies, percentile, ratio
from benchmarks.latency import LatencyFigures
from benchmarks.pipeline import PipelineFigures
from benchmarks.stages import STAGES, StageFigures, measure_stages
from benchmarks.table import markdown_table
from chaos.backlog import shop_events
from promo.cli import _bench, _parser
from promo.settings import load_settings
from streams.batch import RawMessage
from streams.user_state import UserState
from streams.validation import validate_event

MODULES = [
    "benchmarks.figures",
    "benchmarks.stages",
    "benchmarks.pipeline",
    "benchmarks.memory",
    "benchmarks.server_cpu",
    "benchmarks.table",
    "benchmarks.settings_ab",
    "chaos.harness",
]

#: What the issue asks the JSON for, as paths of keys.
REQUIRED = [
    "command",
    "machine.cores",
    "machine.python",
    "transport_ceiling.events_per_s",
    "transport_ceiling.cpu_us_per_event",
    "framework_ceiling.events_per_s",
    "framework_ceiling.cpu_us_per_event",
    "pipeline.events_per_s",
    "pipeline.cpu_us_per_event",
    "pipeline.method",
    "ratios.pipeline_to_framework",
    "ratios.framework_to_transport",
    "ratios.pipeline_to_transport",
    "stages.method",
    *(
        f"stages.us_per_event.{stage}"
        for stage in (
            "validation",
            "state_decode",
            "state_encode",
            "features",
            "models",
            "policy",
            "attribution",
            "produce_encode",
            "sink_rows",
        )
    ),
    *(
        f"latency.{output}.{q}"
        for output in ("event_to_offer", "event_to_decision")
        for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
    ),
    "latency.rate_events_per_s",
    "state_bytes_per_user.mean_bytes",
    "state_bytes_per_user.p95_bytes",
    "state_bytes_per_user.max_bytes",
    "memory_1m_users.users",
    "memory_1m_users.rss_mb",
    "memory_1m_users.rss_mb_peak",
    "memory_1m_users.ready_seconds",
    "memory_1m_users.sweep_seconds",
    "memory_1m_users.method",
    "two_workers.events_per_s",
    "two_workers.ratio_to_one_worker",
    "sinks_apart.events_per_s",
    "sinks_apart.ratio_to_one_worker",
    "sinks_apart.ratio_to_framework",
    "sinks_apart.sinks_process_cpu_us_per_event",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


@given(st.lists(st.integers(-1_000, 1_000), min_size=1, max_size=60), st.integers(1, 100))
def test_percentile_is_the_nearest_rank(values: list[int], q: int) -> None:
    """An observed value with at least q % of the values at or below it, and fewer than
    q % strictly below it."""
    p = percentile(values, q)
    n = len(values)
    assert p in values
    assert sum(v <= p for v in values) * 100 >= q * n
    assert sum(v < p for v in values) * 100 < q * n


def test_percentiles_of_one_to_a_hundred() -> None:
    summary = latency_summary(list(range(100, 0, -1)))
    assert summary == {"n": 100, "p50_ms": 50, "p95_ms": 95, "p99_ms": 99, "max_ms": 100}


def test_latency_joins_outputs_to_their_events_send_time() -> None:
    sent = {"e1": 10_000, "e2": 10_500}
    outputs = [("e2", 11_700), ("old", 50), ("e1", 11_000), ("e1", 11_100)]  # e1 twice: resent
    assert output_latencies(sent, outputs) == [(10_500, 1_200), (10_000, 1_000), (10_000, 1_100)]


def test_ratio_without_a_denominator() -> None:
    assert (ratio(3, 4), ratio(3, 0)) == (0.75, None)


def tiny_backlog(events: int = 800) -> list[RawMessage]:
    """Shop traffic as a worker would read it: keyed partitions, offsets per partition."""
    offsets: dict[int, int] = {}
    messages = []
    for event in shop_events(events, seed=5, run_id="unit"):
        key = event["user_id"].encode()
        partition = zlib.crc32(key) % 4
        offsets[partition] = offsets.get(partition, -1) + 1
        value = orjson.dumps(event)
        messages.append(
            RawMessage(value, key, event["ts"], "clickstream", partition, offsets[partition])
        )
    return messages


@pytest.fixture(scope="module")
def stages() -> StageFigures:
    return measure_stages(load_settings(), tiny_backlog())


def test_every_stage_is_timed_and_they_add_up_to_at_most_the_total(stages: StageFigures) -> None:
    assert set(stages.us_per_event) == set(STAGES)
    assert all(us >= 0 for us in stages.us_per_event.values())
    assert stages.calls["validation"] == stages.events == 800
    assert min(stages.calls[s] for s in ("state_decode", "features", "state_encode")) > 0
    # Exclusive times of timed regions inside the timed whole (each rounded to 0.1 us).
    assert sum(stages.us_per_event.values()) <= stages.instrumented_us_per_event + 0.1 * len(STAGES)


def test_the_timed_functions_are_restored(stages: StageFigures) -> None:
    assert streams.batch.validate_event is validate_event
    assert "timed" not in repr(UserState.from_bytes) and "timed" not in repr(UserState.to_bytes)


def fake_measured(stages: StageFigures) -> Measured:
    servers = {"broker": 1.0, "clickhouse": None}
    pipeline = PipelineFigures(1, 800, 5.0, 0.35, 0.4, 0.12, (210.0,), {"decisions": 30}, servers)
    return Measured(
        events=800,
        users=40,
        transport=Ceiling("plain", 800, 0.004, 0.002, servers),
        framework=Ceiling("decode only", 800, 0.1, 0.05, servers, 5.0, 0.1),
        stages=stages,
        one_worker=pipeline,
        two_workers=PipelineFigures(2, 800, 6.0, 0.3, 0.32, 0.13, (200.0, 190.0), {}, servers),
        sinks_apart=replace(pipeline, seconds=0.2, sinks_cpu_seconds=0.02),
        latency=LatencyFigures(
            share=0.5,
            rate=1_000,
            seconds=15.0,
            warmup_seconds=3.0,
            events_sent=15_000,
            to_decision=[(0, 900), (20_000, 1_300)],
            to_offer=[(0, 950)],
            drain_seconds=3.1,
            worker_cpu_seconds=2.0,
            server_cpu_seconds=servers,
            sender_cpu_seconds=4.0,
        ),
        latency_at_quarter_rate=LatencyFigures(
            share=0.25,
            rate=500,
            seconds=7.5,
            warmup_seconds=3.0,
            events_sent=3_750,
            to_decision=[(0, 400)],
            to_offer=[],
            drain_seconds=2.9,
            worker_cpu_seconds=0.5,
            server_cpu_seconds=servers,
            sender_cpu_seconds=1.0,
            state_writes=3_700,
        ),
        state_sizes=[700, 900, 1_400],
        memory={
            "method": "a worker",
            "synthetic": False,
            "users": 1_000_000,
            "due_windows": 800_000,
            "produce_seconds": 140.0,
            "ready_seconds": 95.0,
            "rss_mb": 1_450.0,
            "rss_mb_peak": 1_600.0,
            "sweep_seconds": 200.0,
            "loop_stall_seconds_before_ready": 1.2,
            "loop_stall_seconds_after_ready": 0.4,
        },
    )


def value_at(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for key in path.split("."):
        assert isinstance(value, dict) and key in value, f"{path}: no {key!r}"
        value = value[key]
    return value


def test_the_json_holds_every_required_figure(stages: StageFigures) -> None:
    machine = {"cores": 2, "python": "3.11.7"}
    figures = report(fake_measured(stages), Options.of(800, True), "promo bench", machine, 1.0)
    for path in REQUIRED:
        assert value_at(figures, path) is not None, path
    assert orjson.loads(orjson.dumps(figures)) == figures  # plain JSON all through
    assert figures["ratios"]["pipeline_to_framework"] == 0.25  # 2,000 / 8,000 events/s
    assert figures["two_workers"]["ratio_to_one_worker"] == 1.25  # 2,500 / 2,000
    assert figures["sinks_apart"]["ratio_to_one_worker"] == 2.0  # 4,000 / 2,000
    assert figures["sinks_apart"]["sinks_process_cpu_us_per_event"] == 25.0  # 0.02 s / 800
    assert figures["latency"]["event_to_decision_p50_ms_per_10_s"] == [900, None, 1_300]
    quarter = figures["latency_at_quarter_rate"]
    assert (quarter["state_writes_per_event"], quarter["event_to_offer"]["p50_ms"]) == (0.987, None)


def test_the_readme_table_shows_every_figure(stages: StageFigures) -> None:
    machine = {"cores": 2, "python": "3.11.7", "cpu": "test"}
    figures = report(fake_measured(stages), Options.of(800, True), "promo bench", machine, 1.0)
    table = markdown_table(figures)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 14  # the header and thirteen figures
    assert "`promo bench` on 2 cores" in table and "| 2,000 events/s |" in table
    assert "900 / 900 / 900 / 900 ms (n = 1)" not in table  # both decisions counted
    assert "900 / 1,300 / 1,300 / 1,300 ms (n = 2)" in table


def test_bench_is_a_command_with_a_quick_mode() -> None:
    args = _parser().parse_args(["bench", "--quick"])
    assert args.command is _bench and args.quick and args.events is None
    assert Options.of(None, quick=True).events < Options.of(None, quick=False).events

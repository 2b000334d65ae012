"""Scenario 4: ClickHouse stopped for a minute in the middle of a run.

The local ClickHouse is stopped (``deploy/local/servers.sh clickhouse-down``) after the first
half of a backlog is stored, and the second half is sent while it is down. Checked: the hot
path decides the whole second half during the outage (its consumer group commits the whole
backlog; decisions reach the decisions topic), the worker's memory stays bounded, a worker
stopped during the outage exits within its grace period, and once ClickHouse is back the
sinks catch up: every event stored, every decision on the topic in the table.

It stops the local ClickHouse: the CI-sized
test runs after every other test, and only on servers this checkout started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from chaos.backlog import as_messages, produce, shop_events
from chaos.crashes import READY_TIMEOUT, wait_finished
from chaos.outcome import Check, ScenarioResult
from chaos.servers import Run, Servers, isolated_run, read_all, servers_sh

#: More than this growth of the worker's resident memory during the outage is unbounded.
MAX_RSS_GROWTH_MB = 200.0
GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class OutageConfig:
    events: int = 40_000
    outage_seconds: float = 60.0
    seed: int = 31
    keep: bool = False


def run(servers: Servers, config: OutageConfig) -> ScenarioResult:
    result = ScenarioResult("outage")
    started = time.monotonic()
    events = shop_events(config.events, config.seed, run_id=f"o{config.seed}")
    half = len(events) // 2
    with isolated_run(servers, "outage", {}, keep=config.keep) as run:
        run.create_topics("clickstream")
        worker = run.worker("main").start()
        worker.wait_ready(READY_TIMEOUT)
        topic = run.topic("clickstream")
        produce(servers.bootstrap_servers, topic, as_messages(events[:half]))
        wait_finished(run, half)
        decided_before = len(decision_ids(run))
        rss_before = worker.rss_mb()
        servers_sh("clickhouse-down")
        try:
            outage_started = time.monotonic()
            produce(servers.bootstrap_servers, topic, as_messages(events[half:]))
            second = run.worker("second").start()
            second.wait_ready(READY_TIMEOUT)
            stop_started = time.monotonic()
            second.stop(grace=GRACE_SECONDS)
            stop_seconds = time.monotonic() - stop_started
            killed = second.process is not None and second.process.returncode == -9
            peak = rss_before
            while time.monotonic() - outage_started < config.outage_seconds:
                peak = max(peak, worker.rss_mb())
                time.sleep(2.0)
            lag_during = run.clickstream_lag()
            decided_during = len(decision_ids(run)) - decided_before
        finally:
            servers_sh("up")
        recovered = time.monotonic()
        wait_finished(run, len(events))
        on_topic = decision_ids(run)
        in_table = run.count("decisions")
        result.injected = {
            "events": len(events),
            "outage_seconds": config.outage_seconds,
            "second_worker": "joins during the outage, stopped (SIGTERM) during it",
        }
        result.measured = {
            "decisions_during_outage": decided_during,
            "clickstream_lag_at_end_of_outage": lag_during,
            "rss_mb_before": round(rss_before, 1),
            "rss_mb_peak_during": round(peak, 1),
            "stop_during_outage_seconds": round(stop_seconds, 1),
            "catch_up_seconds": round(time.monotonic() - recovered, 1),
            "events_stored": run.count("events"),
            "decisions_on_topic": len(on_topic),
            "decisions_in_table": in_table,
        }
        result.checks = [
            Check.equal("the hot path decided during the outage", True, decided_during > 0),
            Check.equal("the whole backlog committed before ClickHouse came back", 0, lag_during),
            Check.equal(
                f"RSS grew less than {MAX_RSS_GROWTH_MB:.0f} MB during the outage",
                True,
                peak - rss_before < MAX_RSS_GROWTH_MB,
            ),
            Check.equal(
                f"a worker stopped during the outage exits within {GRACE_SECONDS:.0f} s",
                True,
                stop_seconds < GRACE_SECONDS and not killed,
            ),
            Check.equal("every event stored after the outage", len(events), run.count("events")),
            Check.equal("every decision on the topic is in the table", len(on_topic), in_table),
        ]
    result.seconds = time.monotonic() - started
    return result


def decision_ids(run: Run) -> set[str]:
    records = read_all(run.servers.bootstrap_servers, run.topic("decisions"), idle_seconds=3.0)
    return {orjson.loads(value)["decision_id"] for _, _, value in records if value}

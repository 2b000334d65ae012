"""What a worker tells its operators: Prometheus metrics, health and readiness.

Served on the worker's web port (``PROMO_WORKER_PORT``, bound to ``PROMO_WORKER_BIND``):

- ``GET /metrics``: the Prometheus text format (the standard ``prometheus_client``);
- ``GET /health``: 200 while the worker's event loop answers (liveness);
- ``GET /ready``: 200 once the worker owns clickstream partitions and has taken them over
  (states recovered, open windows indexed), 503 before or while it rebalances.

Each worker has its own registry (``WorkerMetrics``), so two apps in one process (tests,
``promo bench``) never share counters. Recording costs a few dictionary look-ups per batch,
not per event: the batch's counts are added once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from faust.web import Request, Response, View
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from agents.topics import owned_partitions
from schemas.outcomes import Outcome
from streams.batch import BatchResult

if TYPE_CHECKING:
    from agents.app import Promo

#: Event → outputs acknowledged, seconds: the notification service's wait, with its tail.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Rows per ClickHouse insert.
ROW_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000)


class SinkMetrics:
    """The sinks' metrics, in a worker's registry or in the registry of ``promo sinks``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.rows = Histogram(
            "promo_sink_rows",
            "Rows per ClickHouse insert",
            ["table"],
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.seconds = Histogram(
            "promo_sink_write_seconds",
            "ClickHouse insert latency",
            ["table"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "promo_sink_failures",
            "Failed ClickHouse writes, by table and kind (outage, rejected)",
            ["table", "kind"],
            registry=r,
        )
        self.stalls = Counter(
            "promo_sink_stalls",
            "Sink partitions found stalled (messages waiting, no progress for the stall "
            "period), by what the watchdog did: resume (one this process holds), unconsumed "
            "(one it does not hold: logged), rejoin (still stalled: a new sinks consumer)",
            ["action"],
            registry=r,
        )


class WorkerMetrics:
    """Every metric a worker exports, in one registry."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.events = Counter(
            "promo_events", "Clickstream events processed, by type", ["type"], registry=r
        )
        self.duplicates = Counter(
            "promo_duplicate_events",
            "Messages skipped as already applied (replays, producers' retries)",
            registry=r,
        )
        self.dead_letters = Counter(
            "promo_dead_letters", "Messages set aside, by reason", ["reason"], registry=r
        )
        self.decisions = Counter(
            "promo_decisions",
            "Decisions logged, by arm (control, explore, serve), trigger and action",
            ["arm", "trigger", "action"],
            registry=r,
        )
        self.suppressions = Counter(
            "promo_suppressions",
            "Decision points that sent nothing although they could have, by reason",
            ["reason"],
            registry=r,
        )
        self.outcomes = Counter(
            "promo_outcomes", "Attributed outcomes, by type", ["type"], registry=r
        )
        self.budget_committed = Gauge(
            "promo_budget_committed",
            "Expected discount committed today, per clickstream partition (its ledger)",
            ["partition"],
            registry=r,
        )
        self.latency = Histogram(
            "promo_decision_latency_seconds",
            "From the Kafka timestamp of the event that triggered a decision to the end of its "
            "batch: outputs (offer included) and states' changelog acknowledged by the broker",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "promo_batch_seconds",
            "Wall time of one clickstream batch: validate, decide, publish",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "promo_consumer_lag",
            "Clickstream messages waiting per owned partition (log end - next offset)",
            ["partition"],
            registry=r,
        )
        self.sinks = SinkMetrics(r)
        self.model_version = Gauge(
            "promo_model_version", "Version of the models this worker decides with", registry=r
        )
        self.model_loaded = Gauge(
            "promo_model_loaded_timestamp_seconds",
            "When this worker started deciding with its current models (Unix time)",
            registry=r,
        )
        self.labels_learned = Gauge(
            "promo_model_labels", "Closed decisions the current models learned from", registry=r
        )
        #: A partition assignment has happened (readiness needs one).
        self.assigned = False

    def record_batch(self, result: BatchResult, started: float, acknowledged: float) -> None:
        """A batch's counts, once it was published; ``started``/``acknowledged``: Unix time
        (s) the batch was taken and its outputs acknowledged."""
        for kind, n in result.event_types.items():
            self.events.labels(kind).inc(n)
        if result.duplicates:
            self.duplicates.inc(result.duplicates)
        for letter in result.dead_letters:
            self.dead_letters.labels(letter.reason.value).inc()
        out = result.output
        for d, message_ts in zip(out.decisions, result.decision_message_ts, strict=True):
            arm = "control" if d.control else "explore" if d.propensity < 1.0 else "serve"
            self.decisions.labels(arm, d.trigger, d.chosen_offer).inc()
            self.latency.observe(max(acknowledged - message_ts / 1000.0, 0.0))
        for s in out.suppressions:
            self.suppressions.labels(s.reason).inc()
        self.record_outcomes(out.outcomes)
        for partition, ledger in result.ledgers.items():
            self.budget_committed.labels(str(partition)).set(ledger.spent)
        self.batch_seconds.observe(acknowledged - started)

    def record_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        for o in outcomes:
            self.outcomes.labels(o.type.value).inc()

    def record_lag(self, lag: Mapping[int, int], owned: set[int]) -> None:
        """Lag of the owned partitions; partitions no longer owned are dropped."""
        for labels in list(self.lag._metrics):
            if int(labels[0]) not in owned:
                self.lag.remove(*labels)
        for partition in owned:
            self.lag.labels(str(partition)).set(lag.get(partition, 0))

    def record_model(self, version: int, labels: int) -> None:
        self.model_version.set(version)
        self.model_loaded.set(time.time())
        self.labels_learned.set(labels)

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format, with its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def serve_metrics(promo: Promo) -> None:
    """``/metrics``, ``/health`` and ``/ready`` on the worker's Faust web server."""
    app, metrics = promo.app, promo.metrics

    @app.page("/metrics")
    async def prometheus(self: View, request: Request) -> Response:
        body, content_type = metrics.exposition()
        return self.bytes(body, headers={"Content-Type": content_type})

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        return self.json({"status": "ok"})

    @app.page("/ready")
    async def ready(self: View, request: Request) -> Response:
        why = not_ready(promo)
        return self.json({"ready": why is None, "reason": why}, status=503 if why else 200)


def not_ready(promo: Promo) -> str | None:
    """Why the worker cannot take traffic yet, or None: it must own its share of the
    clickstream, recovered and taken over (open windows indexed, broker checked)."""
    app = promo.app
    if not promo.metrics.assigned:
        return "no partition assignment yet"
    if app.rebalancing:
        return "rebalancing"
    if app.in_recovery:
        return "recovering state from the changelog"
    if promo.expiry.taking_over and owned_partitions(app, promo.settings.topic_clickstream):
        return "taking over partitions"
    return None

"""Build the Faust app and everything it runs from the one settings object."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TableT

from agents.expiry import ExpiryIndex
from agents.faust_commits import commit_past_repeated_offsets
from agents.faust_drain import hand_messages_on_without_tasks
from agents.metrics import WorkerMetrics, serve_metrics
from agents.outputs import OutputProducer, Outputs
from agents.state_store import UserStateTable
from agents.topics import Topics
from promo.logs import worker_logging_config
from promo.settings import Settings
from streams.catalogue import COMPLEMENT
from streams.engine import DecisionEngine, EngineConfig
from streams.models import ModelSnapshot
from streams.policy import ContactLimits

HOUR_MS = 3_600_000


@dataclass
class Promo:
    """What the agents share: the app, its topics, the user-state table and the engine."""

    app: faust.App
    settings: Settings
    topics: Topics
    user_state: TableT[bytes, bytes]
    engine: DecisionEngine
    expiry: ExpiryIndex
    outputs: Outputs
    metrics: WorkerMetrics


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        catalogue=settings.catalogue(),
        policy_version=settings.policy_version,
        control_share=settings.control_share,
        holdout_salt=settings.holdout_salt,
        explore_share=settings.explore_share,
        confidence_z=NormalDist().inv_cdf(settings.offer_confidence),
        gross_margin=settings.gross_margin,
        attribution_window_ms=int(settings.attribution_window_hours * HOUR_MS),
        offer_ttl_ms=int(settings.offer_ttl_hours * HOUR_MS),
        decision_lateness_ms=settings.decision_lateness_minutes * 60_000,
        abandon_after_ms=settings.cart_abandon_minutes * 60_000,
        limits=ContactLimits(
            cooldown_ms=int(settings.decision_cooldown_minutes * 60_000),
            max_per_day=settings.max_offers_per_day,
            max_per_week=settings.max_offers_per_week,
        ),
        triggers=frozenset(settings.decision_triggers.split(",")),
        shadow_z=(
            NormalDist().inv_cdf(settings.shadow_confidence)
            if settings.shadow_confidence is not None
            else None
        ),
        shadow_policy=(
            f"{settings.policy_version}@confidence={settings.shadow_confidence}"
            if settings.shadow_confidence is not None
            else ""
        ),
        daily_budget=settings.daily_budget,
        budget_partitions=settings.topic_partitions,
        high_value_spend=settings.high_value_spend_30d,
        abuse_threshold=settings.abuse_threshold,
    )


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """Faust's form of the broker security settings (its consumer, producer and admin)."""
    protocol, context = settings.broker_security_protocol, settings.broker_ssl_context()
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.broker_sasl_username,
            password=settings.broker_sasl_password.get_secret_value(),
            mechanism=settings.broker_sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


def initial_snapshot(settings: Settings, config: EngineConfig) -> ModelSnapshot:
    return ModelSnapshot.initial(config.actions, settings.n_segments, settings.model_seed)


def faust_app(settings: Settings) -> faust.App:
    """A Faust app with the worker's broker, store, web and consumer options, no agents yet
    (``promo bench`` runs its framework ceiling on this same app)."""
    hold_fetches_at_most(settings.consumer_fetch_max_wait_ms)
    commit_past_repeated_offsets()
    hand_messages_on_without_tasks()
    return faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store=settings.store_url,
        web_port=settings.worker_port,
        web_bind=settings.worker_bind,
        # Faust's pages that show table contents, routing and internals are unauthenticated:
        # off. What stays is its index page, and ours: /metrics, /health, /ready.
        web_tables_enabled=False,
        logging_config=worker_logging_config(settings.log_format),
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        broker_credentials=broker_credentials(settings),
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        producer_max_batch_size=settings.producer_max_batch_size,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
    )


_create_worker_consumer = AIOKafkaConsumerThread._create_worker_consumer


def hold_fetches_at_most(ms: int) -> None:
    """Make the worker's consumer ask the broker to hold a fetch for at most ``ms``.

    Faust hard-codes 1,500 ms. A Kafka broker answers a held fetch as soon as data arrives,
    so that only bounds idle polling; Tansu holds it anyway, which made events wait ~0.4 s
    (p50) before the worker even saw them. The local profile lowers it; production keeps
    Faust's value. (Process-wide: a worker process runs one app.)
    """

    def create(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = _create_worker_consumer(self, transport)
        consumer._fetch_max_wait_ms = ms  # read by the consumer's fetcher when it starts
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def run_worker(app: faust.App, settings: Settings) -> None:
    """Faust's worker for ``app`` in the foreground until SIGTERM, with the settings' log level
    and web port. Returns only through SystemExit when the worker stops."""
    sys.argv = [
        "promo",
        "worker",
        f"--loglevel={settings.worker_log_level}",
        f"--web-port={settings.worker_port}",
    ]
    app.main()


def create_app(settings: Settings, snapshot: ModelSnapshot | None = None) -> Promo:
    """The worker's app. ``snapshot``: the latest published models, if known at start."""
    app = faust_app(settings)
    topics = Topics.declare(app, settings)
    config = engine_config(settings)
    expiry = ExpiryIndex(allowed_lateness_ms=config.decision_lateness_ms)
    user_state = UserStateTable(
        app,
        name="user-state",
        beacon=app.tables.beacon,
        key_type=bytes,  # bytes key and value types make Faust use its "raw" codec
        value_type=bytes,
        partitions=settings.topic_partitions,
    )
    user_state.expiry = expiry
    app.tables.add(user_state)
    engine = DecisionEngine(config, snapshot or initial_snapshot(settings, config))
    outputs = OutputProducer(settings)
    metrics = WorkerMetrics()
    metrics.record_model(engine.snapshot.version, engine.snapshot.response.labels)
    promo = Promo(app, settings, topics, user_state, engine, expiry, outputs, metrics)
    serve_metrics(promo)

    @app.on_before_shutdown.connect  # after the consumer stopped, before Faust's producer
    async def flush_outputs(*args: object, **kwargs: object) -> None:
        await outputs.stop()

    from agents import clickstream, learner, rules, sinks

    clickstream.register(promo)
    learner.register(promo)
    if any(o.category == COMPLEMENT for o in config.catalogue):
        rules.register(promo)  # a catalogue without complement bundles needs no rules
    sinks.register(promo)
    return promo

"""Plays the simulated shop against a real broker: the one part of ``simulator`` that does I/O.

The loop advances sim time in small steps. Each step produces the shop's events to the
clickstream topic (key: user_id), reads whatever offers have arrived (poll with timeout 0,
never blocking the clock), hands them to the shop and paces itself so the workers keep up.
Sim time starts in the past (by default ``days`` plus an hour before now) and ends before the
run started, so an event's time is never ahead of its Kafka message timestamp, which the
engine would reject.

Offers are read from the start of the topic (a new topic may get this run's first offers
before the consumer is ready, which "latest" would skip) by partition assignment, not a
group join (slow on Tansu); those produced before this run began, or for users or times not
in it, are set aside and counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from schemas.offers import Offer
from simulator.config import HOUR_MS, SimulationConfig, SimulationSummary, default_start_ms
from simulator.malformed import MalformedInjector, Message
from simulator.population import Population, build_population
from simulator.shop import DAY_MS, OfferReceipt, Shop
from simulator.truth import ground_truth
from streams.errors import ConfigError, ServerUnavailable

__all__ = ["SimulationConfig", "SimulationError", "SimulationSummary", "run_simulation"]

_TOPIC_ALREADY_EXISTS = 36


class SimulationError(ServerUnavailable):
    """The broker or ClickHouse failed during a simulation run; the message says where."""


def run_simulation(
    config: SimulationConfig, on_progress: Callable[[float], object] | None = None
) -> SimulationSummary:
    """Run the shop against the broker (and write the truth to ClickHouse if configured).
    ``on_progress`` is told each step's simulated hours as they are played."""
    wall_start = time.time()
    wall_start_ms = int(wall_start * 1000)
    start_ms = (
        config.start_ms
        if config.start_ms is not None
        else default_start_ms(wall_start_ms, config.days)
    )
    end_ms = start_ms + round(config.days * DAY_MS)
    if end_ms > wall_start_ms:
        raise ConfigError(
            "simulation config: start_ms + days ends after now; events would be ahead of their "
            "Kafka timestamps, which the engine rejects"
        )
    population = build_population(config.users, config.seed, user_prefix=f"r{config.run_id}-")
    shop = Shop(population, start_ms=start_ms, run_id=config.run_id, seed=config.seed)
    injector = MalformedInjector(config.malformed_share, config.run_id, config.seed)
    _ensure_topics(config)
    if config.clickhouse_url:
        _store_truth(config, population)
    run = _Run(config, shop, injector, wall_start_ms)
    try:
        run.play(start_ms, end_ms, on_progress or (lambda hours: None))
    finally:
        run.close()
    summary = run.summary(
        population_size=len(population.users), wall_seconds=time.time() - wall_start
    )
    if config.clickhouse_url:
        _store_run(config, summary, wall_start)
    return summary


class _Run:
    """The producer, the offers consumer and the counters of one run."""

    def __init__(
        self, config: SimulationConfig, shop: Shop, injector: MalformedInjector, wall_start_ms: int
    ) -> None:
        self.config = config
        self.shop = shop
        self.injector = injector
        self.wall_start_ms = wall_start_ms
        self.sent = 0
        self.offers_received = 0
        self.skipped: Counter[str] = Counter()
        self.failures: list[BaseException] = []
        self.consumer = _offers_consumer(config)
        try:
            self.producer = KafkaProducer(
                bootstrap_servers=config.bootstrap_servers,
                linger_ms=5,
                allow_auto_create_topics=False,
                **config.kafka_options,
            )
        except BaseException:
            self.consumer.close()
            raise

    def play(self, start_ms: int, end_ms: int, on_progress: Callable[[float], object]) -> None:
        step_ms = max(1, round(self.config.step_seconds * 1000))
        rate = self.config.max_events_per_second
        began = time.monotonic()
        now = start_ms
        while now < end_ms:
            step = min(end_ms - now, step_ms)
            now += step
            self._produce(self.shop.advance(now))
            on_progress(step / HOUR_MS)
            self._receive_offers(now, timeout_ms=0)
            ahead = began + self.sent / rate - time.monotonic()
            if ahead > 0.002:
                time.sleep(ahead)
        # The tail: offers for the last events still arrive; they are shown at the end time.
        self.producer.flush(timeout=60)
        deadline = time.monotonic() + self.config.tail_seconds
        while time.monotonic() < deadline:
            self._receive_offers(end_ms, timeout_ms=200)
            self._produce(self.shop.advance(end_ms))
        self.producer.flush(timeout=60)
        if self.failures:
            raise SimulationError(
                f"{len(self.failures)} messages to {self.config.clickstream_topic!r} failed; "
                f"first: {self.failures[0]!r}"
            )

    def close(self) -> None:
        self.consumer.close()
        self.producer.close(timeout=30)

    def _produce(self, events: list[dict[str, Any]]) -> None:
        messages: list[Message] = self.injector.messages(events)
        topic = self.config.clickstream_topic
        for message in messages:
            future = self.producer.send(topic, key=message.key, value=message.value)
            future.add_errback(self.failures.append)
        self.sent += len(messages)

    def _receive_offers(self, now_ms: int, timeout_ms: int) -> None:
        for records in self.consumer.poll(timeout_ms=timeout_ms).values():
            for record in records:
                if record.timestamp < self.wall_start_ms:
                    self.skipped["before_run"] += 1
                    continue
                offer = _decode_offer(record.value)
                if offer is None:
                    self.skipped["invalid"] += 1
                    continue
                self.offers_received += 1
                self.shop.receive_offer(offer, now_ms)

    def summary(self, population_size: int, wall_seconds: float) -> SimulationSummary:
        stats = self.shop.stats
        return SimulationSummary(
            run_id=self.config.run_id,
            users=population_size,
            events_sent=stats.events,
            malformed_sent={kind.value: n for kind, n in self.injector.counts.items()},
            offers_received=self.offers_received,
            offers_shown=stats.receipts[OfferReceipt.SHOWN],
            offers_not_shown={
                receipt.value: n
                for receipt, n in stats.receipts.items()
                if receipt is not OfferReceipt.SHOWN
            },
            offers_skipped=dict(self.skipped),
            offers_clicked=stats.offers_clicked,
            purchases=stats.purchases,
            coupon_purchases=stats.coupon_purchases,
            sim_start_ms=self.shop.start_ms,
            sim_end_ms=self.shop.now,
            wall_seconds=wall_seconds,
        )


def _decode_offer(raw: bytes | None) -> Offer | None:
    try:
        data = orjson.loads(raw or b"")
        return Offer.from_json_dict(data) if isinstance(data, dict) else None
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None


def _ensure_topics(config: SimulationConfig) -> None:
    """Create the two topics if missing; "already exists" is fine."""
    spec = {"num_partitions": config.partitions, "replication_factor": config.replication}
    topics = {config.clickstream_topic: spec, config.offers_topic: spec}
    try:
        admin = KafkaAdminClient(bootstrap_servers=config.bootstrap_servers, **config.kafka_options)
        try:
            response = admin.create_topics(topics, raise_errors=False)
        finally:
            admin.close()
    except Exception as exc:  # kafka-python raises a zoo of types; all are infrastructure
        raise SimulationError(
            f"could not create topics {sorted(topics)} on {config.bootstrap_servers}: {exc!r}"
        ) from exc
    for topic in response["topics"]:
        if topic["error_code"] not in (0, _TOPIC_ALREADY_EXISTS):
            raise SimulationError(
                f"could not create topic {topic['name']!r}: error {topic['error_code']} "
                f"{topic.get('error_message') or ''}".strip()
            )


def _offers_consumer(config: SimulationConfig, wait_seconds: float = 15.0) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        group_id=f"promo-simulator-{config.run_id}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # The run creates its topics; a late metadata request must not recreate a deleted one.
        allow_auto_create_topics=False,
        **config.kafka_options,
    )
    deadline = time.monotonic() + wait_seconds
    while not (partitions := consumer.partitions_for_topic(config.offers_topic)):
        if time.monotonic() > deadline:
            consumer.close()
            raise SimulationError(
                f"topic {config.offers_topic!r} has no partitions after {wait_seconds} s"
            )
        time.sleep(0.2)
    consumer.assign([TopicPartition(config.offers_topic, p) for p in sorted(partitions)])
    return consumer


def _store_truth(config: SimulationConfig, population: Population) -> None:
    from promo.clickhouse import connect_url  # clickhouse_driver only when a URL is given
    from simulator import truth_store

    rows = ground_truth(
        population.users,
        config.catalogue,
        window_hours=config.window_hours,
        offer_ttl_hours=config.offer_ttl_hours,
        gross_margin=config.gross_margin,
        categories=population.assortment.categories,
    )
    assert config.clickhouse_url is not None
    client = connect_url(config.clickhouse_url, config.clickhouse_password)
    try:
        truth_store.insert_truth(client, config.run_id, rows)
    except Exception as exc:  # clickhouse_driver's errors and socket errors alike
        raise SimulationError(
            f"could not write the ground truth to ClickHouse ({exc!r}); "
            "its tables come from `promo migrate`"
        ) from exc
    finally:
        client.disconnect()


def _store_run(config: SimulationConfig, summary: SimulationSummary, wall_start: float) -> None:
    from promo.clickhouse import connect_url
    from simulator import truth_store

    assert config.clickhouse_url is not None
    client = connect_url(config.clickhouse_url, config.clickhouse_password)
    try:
        truth_store.insert_run(
            client,
            {
                "run_id": summary.run_id,
                "started_at": wall_start,
                "sim_start_ms": summary.sim_start_ms,
                "sim_end_ms": summary.sim_end_ms,
                "users": summary.users,
                "events_sent": summary.events_sent,
                "malformed_sent": summary.malformed_total,
                "offers_received": summary.offers_received,
                "offers_shown": summary.offers_shown,
                "purchases": summary.purchases,
            },
        )
    except Exception as exc:
        raise SimulationError(f"could not write the run row to ClickHouse: {exc!r}") from exc
    finally:
        client.disconnect()

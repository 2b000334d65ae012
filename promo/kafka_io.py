"""Plain Kafka chores outside the Faust worker: create topics, read the latest models, peek.

Reading never trusts end offsets (Tansu reports them wrong when a batch held several
records): it reads until it has what it wants or the topic goes quiet for ``idle_ms``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import suppress

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from promo.settings import Settings
from streams.errors import PromoError, ServerUnavailable
from streams.models import ModelSnapshot

log = logging.getLogger(__name__)


class BrokerUnavailable(ServerUnavailable):
    """The Kafka broker did not answer; the message names it."""


def ensure_topics(settings: Settings, partitions: dict[str, int]) -> list[str]:
    """Create the missing topics; returns the names created.

    The models and rules topics are compacted: every snapshot has the same key, so the broker
    keeps the latest and a starting worker reads one snapshot, not the whole history.
    """
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id="promo-admin",
            **settings.kafka_options(),
        )
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"no Kafka broker at {settings.broker_url} (PROMO_BROKER_URL)"
        ) from exc
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name,
                count,
                settings.topic_replication,
                topic_configs={"cleanup.policy": "compact"}
                if name in (settings.topic_models, settings.topic_rules)
                else {},
            )
            for name, count in partitions.items()
            if name not in existing
        ]
        for topic in missing:
            with suppress(TopicAlreadyExistsError):  # another worker created it meanwhile
                admin.create_topics([topic])
        return [t.name for t in missing]
    finally:
        admin.close()


def read_messages(
    settings: Settings, topic: str, *, limit: int | None = None, idle_ms: int = 3000
) -> Iterator[tuple[int, int, bytes | None, bytes]]:
    """(partition, offset, key, value) of a topic from its beginning, outside any group."""
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            enable_auto_commit=False,
            consumer_timeout_ms=idle_ms,
            **settings.kafka_options(),
        )
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"no Kafka broker at {settings.broker_url} (PROMO_BROKER_URL)"
        ) from exc
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        for count, message in enumerate(consumer, start=1):
            yield message.partition, message.offset, message.key, message.value
            if limit is not None and count >= limit:
                return
    finally:
        consumer.close()


def latest_snapshot(settings: Settings, layout: tuple[str, ...]) -> ModelSnapshot | None:
    """The newest readable model snapshot on the models topic, if any: a starting worker
    decides with it from its first event instead of with untrained models."""
    newest: ModelSnapshot | None = None
    try:
        for _, offset, _, value in read_messages(settings, settings.topic_models, idle_ms=1500):
            try:
                snapshot = ModelSnapshot.from_bytes(value, expected_layout=layout)
            except PromoError as exc:
                log.warning("skipping model snapshot at offset %d: %s", offset, exc)
                continue
            if newest is None or snapshot.version > newest.version:
                newest = snapshot
    except KafkaError as exc:
        log.warning(
            "could not read %s (%r); starting with untrained models", settings.topic_models, exc
        )
    return newest

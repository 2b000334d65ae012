"""The learner and the model feed: how every worker decides with the same, improving models.

The training topic has one partition, so exactly one worker of the group learns. When it
takes the partition (at start, after a crash of the previous learner, or a rebalance) it first
reads the models topic to its end and continues from the newest snapshot. It updates its copy
with each labelled decision it has not learned yet (the snapshot records the offset of the last
one it read) and, every ``model_publish_every`` labels or ``model_publish_seconds``, publishes a
snapshot with the next version to the models topic. Every worker (the learner included) tails
the models topic outside the consumer group and swaps in each newer snapshot. A batch's
offsets are committed only after the broker acknowledged the snapshot that learned it, so a
crashed learner loses no labels, and its successor learns none twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from faust.types import StreamT

from agents.app import Promo
from agents.follow import feed_consumer, follow_topic
from promo.settings import Settings
from streams.errors import ModelError, PromoError
from streams.learning import LearnerModels, learn_batch
from streams.models import ModelSnapshot

log = logging.getLogger(__name__)

#: How long a new learner may take to read the models topic to its end before it gives up
#: (and stops the worker) rather than learn on top of older models.
READ_MODELS_SECONDS = 60.0


class ModelsUnavailable(PromoError):
    """The learner could not read or publish model snapshots; the worker stops."""


def register(promo: Promo) -> None:
    app, s, engine = promo.app, promo.settings, promo.engine
    layout = engine.snapshot.layout
    models = LearnerModels()
    taken_over = [True]  # read the models topic to its end before the next batch

    @app.on_partitions_assigned.connect
    async def on_assigned(*args: object, **kwargs: object) -> None:
        taken_over[0] = True

    @app.agent(promo.topics.training, name="promo.learner")
    async def learn(stream: StreamT[bytes]) -> None:
        nonlocal models
        every, seconds = s.model_publish_every, s.model_publish_seconds
        async for events in stream.take_events(every, within=seconds):  # type: ignore[attr-defined]
            if taken_over[0]:
                try:
                    models = await read_published(s, layout, models.own)
                except ModelsUnavailable as exc:
                    await _stop(promo, exc)
                    return
                taken_over[0] = False
            models.saw(engine.snapshot)  # the newest its follower adopted: another learner's?
            snapshot = models.base()
            done = learn_batch(
                snapshot, [(e.message.offset, e.message.value or b"") for e in events]
            )
            for offset, why in done.unreadable:
                log.error(
                    "skipping training example at offset %s: %s",
                    offset,
                    why,
                    extra={"offset": offset, "reason": why},
                )
            if done.learned + len(done.unreadable) == 0:  # a replay after a take-over
                log.info("nothing to publish: %d already learned", done.already_learned)
                continue
            snapshot.number_and_name(models.next_version())
            try:
                await publish_snapshot(promo, snapshot)
            except ModelsUnavailable as exc:
                await _stop(promo, exc)
                return
            models.saw(snapshot)
            log.info(
                "published models v%d after %d examples (to offset %d; %d already learned)",
                snapshot.version,
                snapshot.examples_seen,
                snapshot.trained_to,
                done.already_learned,
            )

    @app.task  # type: ignore[untyped-decorator]
    async def follow_models() -> None:
        def adopt(snapshot: ModelSnapshot) -> None:
            if snapshot.version > engine.snapshot.version:
                engine.snapshot = snapshot
                promo.metrics.record_model(snapshot.version, snapshot.response.labels)
                log.info("deciding with models v%d", snapshot.version)

        await follow_published_models(s, layout, adopt)


async def follow_published_models(
    settings: Settings,
    layout: tuple[str, ...],
    adopt: Callable[[ModelSnapshot], None],
    consumer: Callable[[Settings], Any] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Tail the models topic from its start, handing every readable snapshot to ``adopt``
    (``agents.follow``; ``promo_model_loaded_timestamp_seconds`` shows since when a worker
    that lost it decides with the models it has)."""
    await follow_topic(
        settings,
        settings.topic_models,
        lambda value, offset: _readable(value, offset, layout),
        adopt,
        consumer,
        sleep,
    )


async def publish_snapshot(promo: Promo, snapshot: ModelSnapshot) -> None:
    """Send ``snapshot`` and wait for the broker to acknowledge it.

    Awaited, not left to Faust: Faust flushes its producer before it commits offsets, but that
    flush gives up after 0.1 s without a send (``ProducerBuffer.flush_atmost``), so the
    examples' offsets could be committed before the snapshot that learned them was delivered,
    and a crash then lost those labels. Until this returns, the batch is not acknowledged.
    """
    delivery = await promo.outputs.send(
        promo.settings.topic_models, b"snapshot", snapshot.to_bytes()
    )
    try:
        await delivery
    except KafkaError as exc:
        raise ModelsUnavailable(f"models v{snapshot.version} were not delivered: {exc!r}") from exc


async def read_published(
    settings: Settings, layout: tuple[str, ...], own: ModelSnapshot | None
) -> LearnerModels:
    """What a learner that takes over continues from: everything published now, not only
    what its follower has read so far (an older snapshot, or none), and its own copy."""
    models = LearnerModels(own=own)
    models.saw(own)
    async for published in published_snapshots(settings, layout):
        models.saw(published)
    return models


async def _stop(promo: Promo, exc: ModelsUnavailable) -> None:
    """Stop the worker rather than learn on top of older models or leave labels unpublished;
    the next learner reads the models topic and the uncommitted examples again."""
    log.error("%s; stopping the worker", exc)
    await promo.app.crash(exc)


async def published_snapshots(
    settings: Settings, layout: tuple[str, ...]
) -> AsyncIterator[ModelSnapshot]:
    """Every readable snapshot on the models topic (one partition), read to its end.

    Without this read, a learner that took over while its follower had not yet reached the
    newest snapshot learned on top of older (or untrained) models and published them under
    the next version number, which every worker then adopted. (Tansu's end offsets fall short
    after a batch of several records; snapshots are sent one at a time, each awaited, so none
    shares a batch. Should one be missed anyway, the follower's newer snapshot is still
    adopted as the base before the next batch.)
    """
    consumer = feed_consumer(settings)
    tp = TopicPartition(settings.topic_models, 0)
    deadline = time.monotonic() + READ_MODELS_SECONDS
    try:
        await consumer.start()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise ModelsUnavailable(
                    f"{settings.topic_models} not read to its end ({end}) in "
                    f"{READ_MODELS_SECONDS:.0f} s"
                )
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for message in batch.get(tp, []):
                snapshot = _readable(message.value, message.offset, layout)
                if snapshot is not None:
                    yield snapshot
    except KafkaError as exc:
        raise ModelsUnavailable(f"cannot read {settings.topic_models}: {exc!r}") from exc
    finally:
        await consumer.stop()


def _readable(value: bytes | None, offset: int, layout: tuple[str, ...]) -> ModelSnapshot | None:
    try:
        return ModelSnapshot.from_bytes(value or b"", expected_layout=layout)
    except ModelError as exc:
        log.warning("ignoring model snapshot at offset %d: %s", offset, exc)
        return None

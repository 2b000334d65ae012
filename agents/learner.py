"""The learner and the model feed: how every worker decides with the same, improving models.

The training topic has one partition, so exactly one worker of the group learns. It updates
its copy of the models with each labelled decision and, every ``model_publish_every`` labels
or ``model_publish_seconds``, publishes a snapshot with the next version to the models topic.
Every worker (the learner included) tails the models topic outside the consumer group and
swaps in each newer snapshot. Offsets of training examples are committed only after the
snapshot that learned them was sent, so a crashed learner loses no labels.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import StreamT

from agents.app import Promo
from schemas.codec import decode
from schemas.training import TrainingExample
from streams.errors import ModelError
from streams.models import ModelSnapshot

log = logging.getLogger(__name__)


def register(promo: Promo) -> None:
    app, s, engine = promo.app, promo.settings, promo.engine
    layout = engine.snapshot.layout
    own: list[ModelSnapshot] = []  # the learner's copy, created on the first batch

    @app.agent(promo.topics.training, name="promo.learner")
    async def learn(stream: StreamT[bytes]) -> None:
        every, seconds = s.model_publish_every, s.model_publish_seconds
        async for events in stream.take_events(every, within=seconds):  # type: ignore[attr-defined]
            if not own or engine.snapshot.version > own[0].version:
                # Start from (or catch up with) the newest published models.
                own[:] = [ModelSnapshot.from_bytes(engine.snapshot.to_bytes())]
            snapshot = own[0]
            for event in events:
                try:
                    example = decode(TrainingExample, event.message.value or b"")
                    snapshot.learn_example(example)
                except (ValueError, TypeError, KeyError) as exc:
                    # Unreadable, or written for another feature layout: an exception here
                    # would drop the whole batch of labels, not just this one.
                    log.error(
                        "skipping training example at offset %s: %r", event.message.offset, exc
                    )
            snapshot.version += 1
            # Buffered: Faust flushes the producer before it commits these examples' offsets.
            promo.topics.models.send_soon(key=b"snapshot", value=snapshot.to_bytes())
            log.info(
                "published models v%d after %d examples", snapshot.version, snapshot.examples_seen
            )

    @app.task  # type: ignore[untyped-decorator]
    async def follow_models() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False, **s.kafka_options()
        )
        await consumer.start()
        try:
            tp = TopicPartition(s.topic_models, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            async for message in consumer:
                try:
                    snapshot = ModelSnapshot.from_bytes(message.value, expected_layout=layout)
                except ModelError as exc:
                    log.warning("ignoring model snapshot at offset %d: %s", message.offset, exc)
                    continue
                if snapshot.version > engine.snapshot.version:
                    engine.snapshot = snapshot
                    promo.metrics.record_model(snapshot.version, snapshot.response.labels)
                    log.info("deciding with models v%d", snapshot.version)
        except asyncio.CancelledError:
            raise
        finally:
            await consumer.stop()

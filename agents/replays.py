"""Decisions already sent, read back when a worker takes partitions over, so that a message
read again after a crash is decided as it was (``DecisionEngine.replays``).

A crash between sending a batch's outputs and saving its states makes the next owner read
the batch again. It re-derives the same decision ids, but it may hold a newer model: without
this, the same ``offer_id`` could go out again with another offer in it. So on taking over
partitions the worker reads the tail of the decisions topic (``REPLAY_WINDOW`` per partition:
more than is ever sent between two offset commits, which Faust makes every few seconds) and
hands those decisions to the engine, which uses each once. They are dropped after
``KEEP_FOR_EVENTS`` events: by then every message that could come again has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from promo.settings import Settings
from schemas.codec import decode
from schemas.decisions import Decision

log = logging.getLogger(__name__)

REPLAY_WINDOW = 2_000
KEEP_FOR_EVENTS = 50_000


@dataclass
class ReplayGuard:
    """When to read the decisions back, and when to let them go."""

    pending: bool = False
    events_since: int = 0

    def taken_over(self) -> None:
        self.pending = True

    def seen(self, events: int, replays: dict[str, Decision]) -> None:
        self.events_since += events
        if replays and self.events_since > KEEP_FOR_EVENTS:
            replays.clear()


async def read_recent_decisions(settings: Settings) -> dict[str, Decision]:
    """The last ``REPLAY_WINDOW`` decisions of every partition of the decisions topic, by id.

    Every partition, not only the clickstream partitions this worker owns: a producer's
    partitioner need not be ours, and the tail is small.
    """
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **settings.kafka_options(),
    )
    await consumer.start()
    decisions: dict[str, Decision] = {}
    try:
        partitions = consumer.partitions_for_topic(settings.topic_decisions) or set()
        tps = [TopicPartition(settings.topic_decisions, p) for p in sorted(partitions)]
        if not tps:
            return decisions
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        left = set()
        for tp in tps:
            if ends[tp] > starts[tp]:
                consumer.seek(tp, max(starts[tp], ends[tp] - REPLAY_WINDOW))
                left.add(tp)
        while left:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break  # the broker has nothing more: what we have is all there is
            for tp, records in batch.items():
                for record in records:
                    try:
                        decision = decode(Decision, record.value or b"")
                    except (ValueError, TypeError, KeyError):
                        continue  # our own topic; the sink logs unreadable records
                    decisions[decision.decision_id] = decision
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
    finally:
        await consumer.stop()
    log.info(
        "read back %d recent decisions for replays in %.1f s",
        len(decisions),
        time.monotonic() - started,
    )
    return decisions

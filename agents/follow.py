"""Tailing a one-partition feed from its start, outside the consumer group: every worker reads
the model snapshots (``agents.learner``) and the bundle rules (``agents.rules``) this way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from promo.settings import Settings

log = logging.getLogger(__name__)

#: A follower that lost its topic reads it again after this long, doubled at each failure in
#: a row up to the maximum.
FOLLOW_RETRY_SECONDS, FOLLOW_RETRY_MAX_SECONDS = 1.0, 30.0

T = TypeVar("T")


async def follow_topic(
    settings: Settings,
    topic: str,
    read: Callable[[bytes | None, int], T | None],
    adopt: Callable[[T], None],
    consumer: Callable[[Settings], Any] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Tail partition 0 of ``topic`` from its start, handing what ``read`` makes of each
    record (value, offset; None: unreadable, passed over) to ``adopt``.

    A broker error (the broker unreachable when the follower starts, a fetch it gives up on)
    reads the topic again after a back-off, while the worker goes on deciding with what it
    has: an app task that raised would stop the whole worker, hot path and all, for a feed it
    can do without for a while. Any other error is a bug and still stops it.
    """
    wait = FOLLOW_RETRY_SECONDS
    tp = TopicPartition(topic, 0)
    while True:
        follower = (consumer or feed_consumer)(settings)
        try:
            await follower.start()
            follower.assign([tp])
            await follower.seek_to_beginning(tp)
            async for message in follower:
                wait = FOLLOW_RETRY_SECONDS
                value = read(message.value, message.offset)
                if value is not None:
                    adopt(value)
            return  # the consumer was stopped: the worker is stopping
        except KafkaError as exc:
            log.error(
                "the follower of %s lost it (%r); reading it again in %.0f s, deciding with "
                "what it has meanwhile",
                topic,
                exc,
                wait,
            )
        finally:
            await follower.stop()
        await sleep(wait)
        wait = min(2 * wait, FOLLOW_RETRY_MAX_SECONDS)


def feed_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer outside any group, committing nothing: a feed is read whole."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **settings.kafka_options(),
    )

"""The hot path's outputs (offers, decisions, outcomes, suppressions, training examples, dead
letters) go through a producer of their own, apart from the one Faust keeps for the state's
changelog.

Two reasons. Faust's producer sends from a buffer drained by one task, and stalls the
consumer when that buffer fills ("producer buffer full"); ours is aiokafka's, whose
``send`` hands the record to its accumulator and returns the delivery future at once. And the
local profile limits Faust's producer to one record per request, a workaround for Tansu's
end offsets that only the changelog needs (its recovery reads them): outputs sent through it
paid that for nothing. Here they are batched normally.

The guarantee does not change: ``agents.deliveries.deliver`` awaits every output's delivery
before it sends the changelog of the states that caused them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from promo.settings import Settings


class Outputs(Protocol):
    """Where the hot path sends what it produced."""

    #: Larger records (key and value, plus framing) cannot be sent.
    max_request_size: int

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[object]:
        """Queue one record; the returned awaitable resolves once the broker has it, or
        raises why not."""
        ...


class OutputProducer:
    """``Outputs`` over an aiokafka producer, started on first use, stopped (flushing what it
    holds) by ``stop``."""

    max_request_size = 1_048_576  # aiokafka's default, Kafka's default message.max.bytes

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[object]:
        producer = self._producer or await self._start()
        try:
            delivery: Awaitable[object] = await producer.send(topic, value, key=key)
            return delivery
        except KafkaError as exc:  # refused before it left (too large, unknown topic...)
            failed: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def _start(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                s = self._settings
                producer = AIOKafkaProducer(
                    bootstrap_servers=s.bootstrap_servers,
                    client_id=f"{s.app_id}-outputs",
                    acks="all",
                    # No linger: a batch's outputs are all handed over in one go of the event
                    # loop, before the sender runs, so they share requests without waiting.
                    linger_ms=0,
                    max_request_size=self.max_request_size,
                    **s.kafka_options(),
                )
                await producer.start()
                self._producer = producer
            return self._producer

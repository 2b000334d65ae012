"""Faust's own fetch loop (``Consumer._drain_messages``) with the hand-off shortcut
(``agents.faust_drain``), on a stand-in for the parts of the consumer it reads."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from mode.services import Service

from agents.faust_drain import _faust_wait_first, _wait_first_eagerly

TP0 = TP("clickstream", 0)
HANDED_ON: contextvars.ContextVar[int] = contextvars.ContextVar("handed_on", default=-1)


class _FetchingConsumer:
    """What ``Consumer._drain_messages`` reads of its consumer: ``getmany`` yields the given
    offsets once, then the consumer stops."""

    sleep = Service.sleep
    consumer_stopped_errors: tuple[type[BaseException], ...] = ()

    def __init__(
        self, offsets: list[int], callback: Callable[[Any], Awaitable[None]], eager: bool
    ) -> None:
        self.offsets, self.callback = offsets, callback
        self.wait_first = (_wait_first_eagerly if eager else _faust_wait_first).__get__(self)
        self.loop = asyncio.get_running_loop()
        self._stopped, self._crashed, self.suspend_flow = (asyncio.Event() for _ in range(3))
        self._read_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)
        self._commit_every, self._n_acked, self.should_stop = None, 0, False
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))
        self.log = logging.getLogger("test_faust_drain")
        self.handed_on_in_the_loop = -2

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        for offset in self.offsets:
            yield TP0, SimpleNamespace(offset=offset, topic=TP0.topic, key=None, value=b"{}")
        self.handed_on_in_the_loop = HANDED_ON.get()  # the fetch loop's own context
        self._stopped.set()

    async def drain(self) -> None:
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        await asyncio.wait_for(Consumer._drain_messages(self, fetcher), 5)  # type: ignore[arg-type]


def _count_tasks() -> list[int]:
    """Tasks started from now on, by all (the loop's own and the fetcher's included)."""
    loop, created = asyncio.get_running_loop(), [0]

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        created[0] += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    return created


@pytest.mark.parametrize("eager", [True, False])
async def test_each_message_is_handed_on_in_order_and_without_a_task_when_the_buffer_has_room(
    eager: bool,
) -> None:
    handed: list[int] = []

    async def hand_on(message: Any) -> None:
        handed.append(message.offset)

    consumer = _FetchingConsumer(list(range(10, 60)), hand_on, eager)
    created = _count_tasks()
    await consumer.drain()
    assert handed == list(range(10, 60))
    assert consumer._read_offset[TP0] == 59
    # Faust's own wait_first starts four tasks per message (the hand-off, the suspend, stop
    # and crash waits); the shortcut none while nothing blocks. (Two are not per message, the
    # loop's: wait_for's, and Faust's sleep(0) before each fetch.)
    assert created[0] - 2 == (0 if eager else 4 * 50)


async def test_a_hand_off_blocked_on_a_full_buffer_is_abandoned_when_the_flow_is_suspended() -> (
    None
):
    handed: list[int] = []
    abandoned: list[int] = []
    room = asyncio.get_running_loop().create_future()  # the buffer never gets room

    async def hand_on(message: Any) -> None:
        if message.offset == 11:
            try:
                await room
            except asyncio.CancelledError:
                abandoned.append(message.offset)
                raise
        handed.append(message.offset)

    consumer = _FetchingConsumer([10, 11, 12], hand_on, eager=True)
    # The rebalance comes while offset 11 waits for room.
    asyncio.get_running_loop().call_later(0.05, consumer.suspend_flow.set)
    await consumer.drain()
    assert abandoned == [11]
    # The loop went on as Faust's does after a suspension: 12 is handed on by Faust's own
    # wait_first (its hand-off completes in its first step), 11 never was.
    assert handed == [10, 12]


async def test_a_hand_off_that_waits_for_room_completes_in_its_own_context() -> None:
    handed: list[int] = []
    room = asyncio.get_running_loop().create_future()

    async def hand_on(message: Any) -> None:
        HANDED_ON.set(message.offset)
        if message.offset == 11:
            await room
        assert HANDED_ON.get() == message.offset
        handed.append(message.offset)

    consumer = _FetchingConsumer([10, 11, 12], hand_on, eager=True)
    asyncio.get_running_loop().call_later(0.05, room.set_result, None)
    await consumer.drain()
    assert handed == [10, 11, 12]
    # Each hand-off ran in a copy of the context, as a task would: nothing leaked out.
    assert consumer.handed_on_in_the_loop == -1


async def test_a_hand_off_that_fails_stops_the_fetch_loop_with_its_error() -> None:
    async def hand_on(message: Any) -> None:
        if message.offset == 11:
            raise ValueError("decoder broke")

    consumer = _FetchingConsumer([10, 11, 12], hand_on, eager=True)
    with pytest.raises(ValueError, match="decoder broke"):
        await consumer.drain()
    assert consumer._read_offset[TP0] == 10

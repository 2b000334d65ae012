"""Faust hands each fetched message on without four tasks per message.

Faust's fetch loop (``Consumer._drain_messages``) hands every message to the conductor with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: so that a rebalance
(which sets ``suspend_flow``) or a stop can abandon a hand-off blocked on a full stream
buffer. ``wait_first`` does that with four new tasks per message (the hand-off, the
suspend, the stop and the crash waits), an ``asyncio.wait`` and three cancellations: a
profile of the decode-only worker (``benchmarks.decode_only``) spent about a fifth of its
main thread there, for hand-offs that mostly complete without waiting.

Here the hand-off's first step runs at once, in a copy of the context as a task would have
it. When it completes there (the stream buffer had room), that is the outcome ``wait_first``
would have returned, and no task was needed. When it suspends (a full buffer, Faust's flow
control or its producer's buffer), the rest of it goes through Faust's own ``wait_first`` as
before, so a rebalance or a stop still abandons it. The shortcut is taken only for the fetch
loop's call, only while the flow is not suspended and the consumer is neither stopping nor
crashed: in every other case ``wait_first`` runs as Faust wrote it.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import WaitResults

_faust_wait_first = Consumer.wait_first
#: The fetch loop: the one caller whose ``wait_first(hand_off, suspend_flow.wait())`` this
#: shortcut knows the meaning of.
_FETCH_LOOP = Consumer._drain_messages.__code__


class _Resumed:
    """The rest of a coroutine whose first step already ran (it yielded ``pending``), to be
    awaited like the coroutine itself: every later step runs in the same context."""

    __slots__ = ("_context", "_coro", "_pending")

    def __init__(
        self, coro: Coroutine[Any, Any, Any], context: contextvars.Context, pending: Any
    ) -> None:
        self._coro, self._context, self._pending = coro, context, pending

    def __await__(self) -> Generator[Any, None, Any]:
        coro, run, pending = self._coro, self._context.run, self._pending
        while True:
            try:
                yield pending
            except BaseException as exc:  # a cancellation (or a throw) goes to the coroutine
                try:
                    pending = run(coro.throw, exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = run(coro.send, None)
                except StopIteration as stop:
                    return stop.value


async def _wait_first_eagerly(self: Any, *coros: Any, timeout: Any = None) -> WaitResults:
    if not (
        sys._getframe(1).f_code is _FETCH_LOOP
        and len(coros) == 2
        and isinstance(coros[0], Coroutine)
        and not self.suspend_flow.is_set()
        and not self._stopped.is_set()
        and not self._crashed.is_set()
    ):
        return await _faust_wait_first(self, *coros, timeout=timeout)
    handoff, suspended = coros
    context = contextvars.copy_context()
    try:
        pending = context.run(handoff.send, None)
    except StopIteration as done:
        suspended.close()  # never started: nothing to cancel
        return WaitResults([handoff], [done.value], False)
    except BaseException:
        suspended.close()
        raise
    return await _faust_wait_first(self, _Resumed(handoff, context, pending), suspended)


def hand_messages_on_without_tasks() -> None:
    """Install the shortcut (process-wide, idempotent)."""
    Consumer.wait_first = _wait_first_eagerly  # type: ignore[method-assign]

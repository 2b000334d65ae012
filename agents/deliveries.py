"""Delivering what the hot path produced: outputs first, then the changelog, then the offsets.

Every batch of the agent, and every sweep, ends the same way: the new states are written to
the local table at once, and then, in this order,

1. the outputs they caused (offers, decisions, outcomes, training examples, suppressions,
   dead letters) are sent and **acknowledged by the broker**;
2. only then the states' changelog entries, also awaited;
3. only then the batch's events are acknowledged to Faust, which may commit their offsets.

A crash anywhere in between replays the events from a state without them, and they derive
the same ids again: nothing is lost, nothing is counted twice. A recovered state skips what it
already holds, so a state must never reach the changelog before what it caused.

**Pipelined.** Waiting for those two round trips used to stop the agent: the next batch was
taken only once the broker had answered, so a worker fed live traffic spent most of its time
idle while its queue grew. Now :class:`Deliveries` delivers each batch in a task of its own
while the agent processes the next one, one batch ahead at most. The order above holds per
batch, and between batches deliveries go out one after another in the order their states were
saved, so a user's newer changelog entry can never overtake an older one (the sweep's
deliveries are in the same queue). The next batch reads the states from the table, where they
already are. If a delivery fails, none after it is sent and the worker stops: the states of
both batches never reach the changelog and their events are never acknowledged, so the next
worker reads them again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError
from faust.types import EventT

from agents.app import Promo
from agents.state_store import Changelog, end_markers, send_changelog
from promo.settings import Settings
from schemas.codec import encode
from schemas.dead_letters import DeadLetter, RejectReason
from streams.batch import RawMessage, dead_letter
from streams.engine import EngineOutput
from streams.errors import PromoError
from streams.validation import Rejected

log = logging.getLogger(__name__)

#: Errors about the record itself: sending it again can never succeed.
NOT_PRODUCIBLE = (MessageSizeTooLargeError, RecordTooLargeError)
#: What a record costs in a request beyond its key and value (headers, batch framing).
RECORD_OVERHEAD_BYTES = 1024


class DeliveryError(PromoError):
    """The broker did not take an output; the batch that caused it must be read again."""


class Deliveries:
    """The worker's queue of deliveries, in the order their states were saved."""

    def __init__(self, promo: Promo) -> None:
        self._promo = promo
        self._last: asyncio.Task[bool] | None = None

    def submit(
        self,
        out: EngineOutput,
        changelog: list[Changelog],
        *,
        dead_letters: Sequence[DeadLetter] = (),
        events: Sequence[EventT[bytes]] = (),
        on_delivered: Callable[[], None] | None = None,
    ) -> asyncio.Task[bool]:
        """Deliver after every delivery submitted before; the task's result is False when
        this one (or an earlier one) was not delivered and the worker is stopping.

        Call it right after saving the states whose ``changelog`` this is, with no ``await``
        in between: the queue's order is the order the states were made. ``events`` are
        acknowledged once delivered (Faust's own acknowledgement of them, when the agent
        takes its next batch, no longer is the last: each carries one more reference).
        """
        for event in events:
            event.message.incref()
        task = asyncio.ensure_future(
            self._deliver(self._last, out, changelog, dead_letters, events, on_delivered)
        )
        self._last = task
        return task

    async def _deliver(
        self,
        before: asyncio.Task[bool] | None,
        out: EngineOutput,
        changelog: list[Changelog],
        dead_letters: Sequence[DeadLetter],
        events: Sequence[EventT[bytes]],
        on_delivered: Callable[[], None] | None,
    ) -> bool:
        if before is not None and not await before:
            return False  # the worker is stopping: nothing may go out after a lost output
        promo = self._promo
        try:
            await deliver(promo, out, changelog, dead_letters)
        except Exception as exc:  # any failure: nothing after it may go out
            # Not only a refused output: a bug here must stop the worker too, now and not
            # when (if ever) the agent next awaits this task.
            log.error("%s; stopping the worker", exc, exc_info=not isinstance(exc, DeliveryError))
            await promo.app.crash(exc)
            return False
        for event in events:
            event.ack()
        if on_delivered is not None:
            on_delivered()
        return True


async def deliver(
    promo: Promo,
    out: EngineOutput,
    changelog: list[Changelog],
    dead_letters: Sequence[DeadLetter] = (),
) -> None:
    """Send the outputs and await the broker's acknowledgement of each, then the changelog.

    An output the broker cannot take as such (too large) would be refused again at every
    replay: a dead letter without payload stands in for it, and the batch goes on. Any other
    refusal raises ``DeliveryError`` before any changelog entry is sent.
    """
    t = promo.settings
    outputs = [
        (t.topic_dead_letters, None if d.key is None else d.key.encode(), encode(d))
        for d in dead_letters
    ]
    outputs += _outputs(t, out)
    send = promo.outputs.send
    limit = promo.outputs.max_request_size - RECORD_OVERHEAD_BYTES
    results = await _delivered(
        [
            await send(topic, key, value)
            if len(value) + len(key or b"") <= limit
            else _failed(MessageSizeTooLargeError(f"{len(value)} bytes"))
            for topic, key, value in outputs
        ]
    )
    stand_ins = [
        _stand_in(topic, key, value, result)
        for (topic, key, value), result in zip(outputs, results, strict=True)
        if isinstance(result, NOT_PRODUCIBLE)
    ]
    if stand_ins:
        log.error("%d outputs could not be produced; dead letters stand in", len(stand_ins))
        await _delivered([await send(t.topic_dead_letters, k, encode(d)) for k, d in stand_ins])
    if changelog:
        # Awaited, not left to Faust: before it commits the batch's offsets, Faust flushes
        # its producer buffer, but that flush gives up after 0.1 s without a send
        # (ProducerBuffer.flush_atmost), so offsets could be committed for states whose
        # changelog entries were still buffered; a crash then lost those events from the
        # states for good (make chaos: views missing from 25 decisions' features).
        for result in await _delivered(send_changelog(promo.user_state, changelog)):
            if isinstance(result, BaseException):  # too large for the broker: a bug, no input
                raise DeliveryError(f"a state's changelog entry was not delivered: {result!r}")
        if t.changelog_end_markers:
            await _delivered(send_changelog(promo.user_state, end_markers(changelog)))


async def _delivered(sent: Sequence[Awaitable[object]]) -> list[object]:
    """Each send's result or its record-level error; ``DeliveryError`` on any other error
    (an outage, a refused topic): the batch must be read again."""
    results = await asyncio.gather(*sent, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, NOT_PRODUCIBLE):
            raise DeliveryError(f"an output was not delivered: {result!r}") from result
    return results


def _failed(exc: BaseException) -> asyncio.Future[object]:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


def _stand_in(
    topic: str, key: bytes | None, value: bytes, exc: BaseException
) -> tuple[bytes | None, DeadLetter]:
    """The dead letter for an output that cannot be produced: where it was going, its size and
    hash, no payload. Its offset is the hash's first 63 bits, so a replay stores it once."""
    digest = hashlib.sha256(value).digest()
    offset = int.from_bytes(digest[:8], "big") >> 1
    why = Rejected(RejectReason.OUTPUT_NOT_PRODUCIBLE, f"{type(exc).__name__}: {exc}")
    raw = RawMessage(value, key, int(time.time() * 1000), topic, 0, offset)
    return key, dead_letter(why, raw, keep_bytes=0)


def _outputs(t: Settings, out: EngineOutput) -> list[tuple[str, bytes | None, bytes]]:
    """Everything a batch produced, as (topic, key, value)."""
    return [
        *((t.topic_offers, o.user_id.encode(), encode(o)) for o in out.offers),
        *((t.topic_decisions, d.user_id.encode(), encode(d)) for d in out.decisions),
        *((t.topic_outcomes, o.user_id.encode(), encode(o)) for o in out.outcomes),
        *((t.topic_training, e.decision_id.encode(), encode(e)) for e in out.training),
        *((t.topic_training, e.example_id.encode(), encode(e)) for e in out.searches),
        *((t.topic_suppressions, s.user_id.encode(), encode(s)) for s in out.suppressions),
    ]

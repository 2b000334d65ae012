"""The hot path: clickstream batches -> user state -> decisions, offers, outcomes, dead letters.

Each batch's outputs and changelog are delivered (``agents.deliveries``) while the next
batch is processed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from aiokafka.structs import TopicPartition
from faust.exceptions import ConsumerNotStarted
from faust.types import TP, EventT, StreamT

from agents.app import Promo
from agents.deliveries import Deliveries
from agents.expiry import STALL_SECONDS, PartitionProgress
from agents.faust_commits import holes_found_by_the_agent
from agents.replays import ReplayGuard, read_recent_decisions
from agents.resume import ResumeGuard
from agents.state_store import (
    Changelog,
    is_user_key,
    load_ledger,
    load_state,
    save_states,
)
from agents.topics import owned_partitions
from promo.settings import Settings
from streams.batch import BatchResult, RawMessage, process_batch
from streams.engine import EngineOutput
from streams.errors import PromoError
from streams.user_state import UserState

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0


def _raw(event: EventT[bytes]) -> RawMessage:
    m = event.message
    # A tombstone (no value) becomes empty bytes: rejected as invalid JSON, never dropped.
    return RawMessage(
        m.value or b"", m.key, int(m.timestamp * 1000), m.topic, m.partition, m.offset
    )


def _record(promo: Promo, result: BatchResult, started: float) -> Callable[[], None]:
    """The batch's metrics, to count once it is delivered."""
    return lambda: promo.metrics.record_batch(result, started, time.time())


def register(promo: Promo) -> None:
    app, s, table, engine, expiry = (
        promo.app,
        promo.settings,
        promo.user_state,
        promo.engine,
        promo.expiry,
    )
    abandon_ms = engine.config.abandon_after_ms
    replays = ReplayGuard()
    progress = PartitionProgress[int]()
    resume = ResumeGuard()
    holes_found_by_the_agent(s.topic_clickstream)
    resume_pending = [False]
    # The agent and the sweep both load states, change them and deliver them. A changelog
    # entry is the state as it was saved: were deliveries reordered, a user's older entry
    # could reach the changelog last, and a restart would recover a state without an event
    # (seen in make chaos). Both save and submit with no await in between, to one queue.
    deliveries = Deliveries(promo)

    @app.agent(promo.topics.clickstream, name="promo.clickstream")
    async def process_clickstream(stream: StreamT[bytes]) -> None:
        ahead: asyncio.Task[bool] | None = None  # the batch being delivered
        async for events in stream.take_events(s.batch_size, within=s.batch_seconds):  # type: ignore[attr-defined]
            if expiry.taking_over and not await _take_over(promo):
                return
            if replays.pending:  # partitions taken over: what was sent may come again
                replays.pending, replays.events_since = False, 0
                engine.replays = await read_recent_decisions(s)
            replays.seen(len(events), engine.replays)
            if resume_pending[0]:
                resume_pending[0] = False
                await _expect_resume(promo, resume)
            events = await _in_order(promo, resume, events)
            if not events:
                continue
            started = time.time()
            moved = time.monotonic()
            # A partition's messages come in offset order: its last one in the batch is its
            # progress (one dict write per event here, one call per partition below).
            newest = {e.message.partition: e.message.offset for e in events}
            for partition, offset in newest.items():
                progress.seen(partition, offset, moved)
            result: BatchResult = process_batch(
                engine,
                [_raw(e) for e in events],
                lambda user_id: load_state(table, user_id, abandon_ms),
                max_bytes=s.max_message_bytes,
                max_future_skew_ms=s.max_future_skew_seconds * 1000,
                now_ms=int(time.time() * 1000),
                max_age_ms=s.max_event_age_days * 86_400_000,
                load_ledger=lambda partition: load_ledger(table, partition),
            )
            clocks: dict[int, list[int]] = {}
            for user_id, state in result.states.items():
                expiry.track(user_id, state)
                clocks.setdefault(state.partition, []).append(state.features.watermark)
            expiry.advance(clocks)
            delivering = deliveries.submit(
                result.output,
                save_states(table, result.states, result.ledgers),
                dead_letters=result.dead_letters,
                events=events,
                on_delivered=_record(promo, result, started),
            )
            # One batch ahead at most: this one is delivered while the next is processed.
            if ahead is not None and not await ahead:
                return
            ahead = delivering

    @app.on_partitions_assigned.connect
    async def on_assigned(*args: object, **kwargs: object) -> None:
        expiry.taking_over = True  # once recovered: their clocks, and the broker checked
        resume_pending[0] = True
        replays.taken_over()
        progress.last.clear()
        progress.stalls.clear()
        promo.metrics.assigned = True

    @app.timer(SWEEP_SECONDS)  # type: ignore[untyped-decorator]
    async def close_expired_windows() -> None:
        owned = _owned_partitions(promo)
        if expiry.taking_over:
            # Partitions taken over: until their recovery has ended, the table holds states
            # recovery is still replacing (this worker's own from an earlier ownership among
            # them). A window closed on one now would put it on the changelog after the
            # recovered entries, as the user's last: without the events another worker folded
            # in meanwhile, which a restart then recovers (make chaos lost a user's views so).
            if not owned or app.rebalancing or app.in_recovery:
                return
            if not await _take_over(promo):
                return
        now = expiry.watermark(owned, int(time.time() * 1000))
        # In rounds of at most a batch, each delivered before the next is closed: after an
        # outage most windows can be due at once (a million users' worker, 820,000 of them:
        # one pass held the event loop 50 s and 3 GB of outputs and states undelivered).
        # Between rounds the agent goes on with the clickstream. At most one pass over the
        # index: a user tracked again still due (never, if windows close as they end) waits.
        left, first = len(expiry.due_at), True
        while left > 0:
            if not first and (expiry.taking_over or app.rebalancing):
                return  # partitions moved meanwhile: the next sweep starts afresh
            first = False
            due = expiry.take_due(now, min(s.batch_size, left))
            if not due:
                break
            left -= len(due)
            out, changed = EngineOutput(), {}
            for user_id in due:
                state = load_state(table, user_id, abandon_ms)
                if state is None or state.partition not in owned:
                    continue  # moved to another worker by a rebalance: out of the index
                if engine.close_expired(state, user_id, now, out):
                    changed[user_id] = state
                expiry.track(user_id, state)
            if out.outcomes:
                log.info("closed %d attribution windows without a purchase", len(out.outcomes))
                promo.metrics.record_outcomes(out.outcomes)
            if not await deliveries.submit(out, save_states(table, changed)):
                return
        tombstones = evict_idle(promo, now, owned) if now >= 0 else []
        # Changelog entries too, in the one queue: in order with the agent's.
        if tombstones and not await deliveries.submit(EngineOutput(), tombstones):
            return
        await _unstall(promo, progress, owned)
        _record_lag(promo, progress, owned)


#: Users looked at per sweep for idleness. Decoding a state costs ~17 µs: 500 make ~8 ms, a
#: pause of the hot path short enough for its latency target, and a pass over a million users
#: every ~3 hours at one sweep per 5 s (eviction is about 31 days).
IDLE_CHECKS_PER_SWEEP = 500


def evict_idle(promo: Promo, now: int, owned: set[int]) -> list[Changelog]:
    """Remove users idle for ``IDLE_EVICTION_MS`` of event time ``now`` from the table; their
    tombstones, for the changelog, so that a recovering worker drops them too.

    Without it the table, and the worker's memory, would grow with every user ever seen.
    """
    table, abandon_ms = promo.user_state, promo.engine.config.abandon_after_ms
    gone: list[Changelog] = []
    for key in promo.expiry.keys_to_check(table.data.keys, IDLE_CHECKS_PER_SWEEP):
        raw = table.data.get(key)
        if raw is None or not is_user_key(key):
            continue
        try:
            state = UserState.from_bytes(raw, abandon_ms)
        except PromoError:
            continue  # the user's own events will fail loudly
        if state.partition in owned and state.evictable(now):
            del table.data[key]
            gone.append((state.partition, key, None))
    return gone


def _record_lag(promo: Promo, progress: PartitionProgress[int], owned: set[int]) -> None:
    """Messages waiting per owned partition: the consumer's latest known log end (from its
    fetches, no request) beyond the next offset the agent expects."""
    consumer, topic = promo.app.consumer, promo.settings.topic_clickstream
    lag = {}
    try:
        for partition in owned:
            end = consumer.highwater(TP(topic, partition))
            if end is not None and partition in progress.last:
                lag[partition] = max(end - progress.last[partition][0] - 1, 0)
    except ConsumerNotStarted:  # a worker starting or stopping: nothing to measure yet
        return
    promo.metrics.record_lag(lag, owned)


def _owned_partitions(promo: Promo) -> set[int]:
    return owned_partitions(promo.app, promo.settings.topic_clickstream)


class PartitionStalled(PromoError):
    """The consumer stopped delivering a partition with messages waiting, and resuming it did
    not help: the worker stops, so that its partitions go to a fresh consumer."""


async def _unstall(promo: Promo, progress: PartitionProgress[int], owned: set[int]) -> None:
    """Owned partitions with messages waiting where the agent got nothing for
    ``STALL_SECONDS``: say so loudly with Faust's view of them and resume them; a partition
    still stalled a period later stops the worker (its restart rejoins the group)."""
    quiet = progress.quiet(owned, time.monotonic())
    if not quiet:
        return
    topic = promo.settings.topic_clickstream
    consumer = promo.app.consumer
    tps = {p: TP(topic, p) for p in quiet}
    ends = await consumer.highwaters(*tps.values())
    # The broker's committed offsets, not Faust's: Faust records an offset as committed even
    # when the commit failed ("already rebalanced"), and a chaos run had the group's offset
    # stay 14k messages behind what the agent had processed, unreported (PartitionProgress).
    committed = await _group_committed(consumer, list(tps.values()))
    if committed is None:
        committed = {
            tp: offset
            for tp, offset in getattr(consumer, "_committed_offset", {}).items()
            if offset is not None
        }
    verdicts = progress.judge(
        quiet,
        {tp.partition: end for tp, end in ends.items()},
        {p: committed[tp] for p, tp in tps.items() if committed.get(tp) is not None},
        time.monotonic(),
        commits=True,
    )
    faust_committed = getattr(consumer, "_committed_offset", {})
    for partition, (verdict, expected) in verdicts.items():
        if verdict == "idle":
            continue
        tp = tps[partition]
        state = (
            f"{topic}[{partition}]: the agent expects offset {expected}, the log ends at "
            f"{ends.get(tp)}, the group committed {committed.get(tp)} (Faust believes "
            f"{faust_committed.get(tp)}), nothing received for {STALL_SECONDS:.0f} s (Faust: "
            f"paused={tp in getattr(consumer, '_paused_partitions', ())}, "
            f"active={tp in (getattr(consumer, '_active_partitions', None) or ())}, "
            f"assigned={tp in consumer.assignment()}, {_commit_view(consumer, tp)})"
        )
        if verdict == "stop":
            exc = PartitionStalled(f"still stalled a period after it was reported: {state}")
            log.error("%s; stopping the worker", exc)
            await promo.app.crash(exc)
            return
        if verdict == "uncommitted":
            log.error("uncommitted partition %s; stopping the worker a period later", state)
            continue
        log.error("stalled partition %s; resuming it", state)
        consumer.resume_partitions({tp})


def _commit_view(consumer: Any, tp: TP) -> str:
    """What Faust holds towards committing ``tp``: the acknowledged offsets not committed yet
    (it commits only a run starting at its committed offset) and whether a commit is under
    way (the others wait for it)."""
    acked = list(getattr(consumer, "_acked", {}).get(tp) or ())
    head = f"{min(acked)}..{max(acked)}" if acked else "none"
    return (
        f"acked not committed={len(acked)} ({head}), "
        f"commit under way={getattr(consumer, '_commit_fut', None) is not None}"
    )


async def _group_committed(consumer: Any, tps: list[TP]) -> dict[TP, int] | None:
    """The group's committed offsets of ``tps`` as the broker holds them (an OffsetFetch on
    Faust's consumer thread), or None when they cannot be had."""
    thread = getattr(consumer, "_thread", None)
    if thread is None:
        return None

    async def fetch() -> dict[TP, int]:
        client = thread._ensure_consumer()
        offsets = {}
        for tp in tps:
            offset = await client.committed(TopicPartition(tp.topic, tp.partition))
            if offset is not None:
                offsets[tp] = offset
        return offsets

    try:
        result: dict[TP, int] = await asyncio.wait_for(thread.call_thread(fetch), 10.0)
    except Exception as exc:  # the watchdog falls back to Faust's view; it must not fail
        log.warning("could not read the group's committed offsets: %r", exc)
        return None
    return result


async def _expect_resume(promo: Promo, resume: ResumeGuard) -> None:
    """At the first batch after an assignment (Faust has sought the partitions to their
    committed offsets, and nothing of them is acknowledged yet, so these are the offsets
    sought): expect each to resume there, not where its log starts after retention. Only
    then: Faust's committed offsets move with every commit."""
    consumer, topic = promo.app.consumer, promo.settings.topic_clickstream
    committed = getattr(consumer, "_committed_offset", {})
    tps = [TP(topic, p) for p in _owned_partitions(promo)]
    known = {tp: committed[tp] for tp in tps if committed.get(tp) is not None}
    starts = await consumer.earliest_offsets(*known) if known else {}
    resume.assigned(
        {tp.partition: offset for tp, offset in known.items() if offset >= starts.get(tp, 0)}
    )


async def _in_order(
    promo: Promo, resume: ResumeGuard, events: Sequence[EventT[bytes]]
) -> Sequence[EventT[bytes]]:
    """The batch's events that continue their partitions in order (see agents.resume). The
    others are never acknowledged, so never committed, and their partitions are sought back
    to the offset expected, to be read again."""
    keep, seek_back, suspects = resume.check(
        [(e.message.partition, e.message.offset) for e in events]
    )
    if all(keep):
        return events
    # Dropped even when the partition needs no seek back: what a seek back read again may
    # come behind the queue's rest in one batch, and the rest is still after the hole (make
    # chaos: messages 41,290-41,326 processed before 37,029, so six users skipped 37,029 on).
    kept = []
    for event, ok in zip(events, keep, strict=True):
        if ok:
            kept.append(event)
        else:
            event.message.acked = True  # done with, without its offset being committed
    if not seek_back:
        return kept
    consumer: Any = promo.app.consumer  # Faust's internals: its gaps and read offsets
    topic = promo.settings.topic_clickstream
    for partition, (expected, answer) in sorted(suspects.items()):
        tp = TP(topic, partition)
        if await _first_offset_from(promo.settings, tp, expected) == answer:
            log.error(
                "%s[%d]: the log has no offsets %d to %d (compaction, a transaction marker): "
                "going on from %d",
                topic,
                partition,
                expected,
                answer - 1,
                answer,
            )
            resume.take(partition, answer)
            seek_back[partition] = answer
            consumer._gap[tp].addi(expected, answer)  # Faust may commit over them
    for partition, offset in sorted(seek_back.items()):
        log.error(
            "%s[%d]: expected offset %d, got %d: reading it again from %d",
            topic,
            partition,
            offset,
            resume.answered.get(partition, offset),
            offset,
        )
        tp = TP(topic, partition)
        if partition not in suspects:
            consumer._gap.pop(tp, None)  # Faust must not commit over what is read again
        await _seek_back(consumer, tp, offset)
    return kept


async def _first_offset_from(settings: Settings, tp: TP, offset: int) -> int | None:
    """The offset of the first message at or after ``offset`` in ``tp``, as the broker has it
    (a consumer of its own, outside the group; None when nothing came within seconds)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=f"{settings.app_id}-hole-check",
        enable_auto_commit=False,
        **settings.kafka_options(),
    )
    part = TopicPartition(tp.topic, tp.partition)
    await reader.start()
    try:
        reader.assign([part])
        reader.seek(part, offset)
        records = await reader.getmany(part, timeout_ms=5_000, max_records=1)
        return next((r.offset for r in records.get(part, ())), None)
    finally:
        await reader.stop()


async def _seek_back(consumer: Any, tp: TP, offset: int) -> None:
    """Read ``tp`` again from ``offset``, for sure.

    Faust's ``Consumer.seek`` calls aiokafka's from this thread while the client runs on its
    own: a chaos run's fetcher crashed on it (KeyError in aiokafka's ``fetched_records``), and
    the records fetched before kept coming, each moving Faust's read offset past the ones
    sought, which it then dropped as read. So: Faust stops handing on what it holds of the
    partition (paused), the client seeks on its own thread, Faust's read offset is set to
    the one sought, and the partition goes on.
    """
    consumer.pause_partitions({tp})
    try:
        thread = consumer._thread

        async def seek() -> None:
            thread._ensure_consumer().seek(TopicPartition(tp.topic, tp.partition), offset)

        await thread.call_thread(seek)
        consumer._read_offset[tp] = offset
    except IllegalStateError:  # revoked meanwhile: its next owner starts at the commit
        log.warning("%s[%d] was revoked before it could be read again", tp.topic, tp.partition)
    finally:
        consumer.resume_partitions({tp} & consumer.assignment())


class BrokerLostData(PromoError):
    """The broker no longer holds what this worker's states were built from."""


async def _take_over(promo: Promo) -> bool:
    """Once partitions taken over are recovered, before their first batch: seed their
    clocks, and check the broker still holds what the states applied. False when it does
    not: the worker is stopping."""
    try:
        await _check_log_holds_state(promo, promo.expiry.take_over())
    except BrokerLostData as exc:
        log.error("%s; stopping the worker", exc)
        await promo.app.crash(exc)
        return False
    return True


async def _check_log_holds_state(promo: Promo, applied: dict[int, int]) -> None:
    """A partition whose states applied messages must have a clickstream and a changelog
    that are not empty.

    Empty ones lost data: a broker restarted without its storage, or topics deleted and
    created again. The consumer would start over at offset 0 and the states would skip every
    new message as a replay, in silence; and the states would be lost at the next restart.
    (Emptiness, not "ends before the applied offset": Tansu's end offsets can fall short of
    the true end on a healthy log, never to 0 while it holds a message.)
    """
    clickstream = promo.settings.topic_clickstream
    changelog = promo.user_state.changelog_topic.get_topic_name()
    owned = [p for p in sorted(_owned_partitions(promo)) if applied.get(p, -1) >= 0]
    if not owned:
        return
    tps = [TP(topic, p) for topic in (clickstream, changelog) for p in owned]
    ends = await promo.app.consumer.highwaters(*tps)
    empty = sorted(f"{tp.topic}[{tp.partition}]" for tp in tps if tp in ends and ends[tp] <= 0)
    if empty:
        raise BrokerLostData(
            f"the broker lost data: {', '.join(empty)} empty, though this worker's state "
            f"has applied clickstream messages up to offsets {applied}. It restarted without "
            "its storage, or the topics were created again; the state no longer matches the "
            "log, so the worker stops rather than skip new messages as replays"
        )

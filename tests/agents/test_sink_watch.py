"""The sinks' stall watchdog, on a stand-in consumer and an explicit clock: what it does about
a partition that stops moving, held by this consumer or not. Against the real broker:
tests/integration/test_sink_watchdog.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from agents.metrics import WorkerMetrics
from agents.sink_watch import AssignmentLog, SinkWatchdog
from agents.sinks import Record, Row, run_sinks, sinks
from tests.agents.test_sinks import SETTINGS, record

STALL = 60.0
A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


class Consumer:
    """aiokafka's consumer as the watchdog sees it: what it holds, the group's offsets, the
    logs' ends; remembers what it was told to resume and seek."""

    def __init__(self, held: set[TopicPartition], **partitions: int) -> None:
        self.held, self.partitions = held, partitions
        self.ends: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.paused_tps: set[TopicPartition] = set()
        self.sought: dict[TopicPartition, int] = {}
        self._coordinator = self

    def assignment(self) -> set[TopicPartition]:
        return set(self.held)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))

    async def fetch_committed_offsets(
        self, tps: set[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        return {tp: OffsetAndMetadata(self.committed.get(tp, -1), "") for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends.get(tp, 0) for tp in tps}

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused_tps -= set(tps)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.sought[tp] = offset


def watchdog() -> tuple[SinkWatchdog, WorkerMetrics]:
    metrics = WorkerMetrics()
    return SinkWatchdog(["a", "b"], metrics.sinks.stalls, stall_seconds=STALL), metrics


def stalls(metrics: WorkerMetrics, action: str) -> float:
    return metrics.registry.get_sample_value("promo_sink_stalls_total", {"action": action}) or 0


async def test_a_held_partition_that_stops_is_resumed_then_its_consumer_replaced() -> None:
    # ---0---------61------------122----> seconds
    #    delivered  resume, seek  still nothing: replace the consumer
    dog, metrics = watchdog()
    consumer = Consumer({A0, A1, B0}, a=2, b=1)
    consumer.ends = {A0: 10, A1: 50, B0: 7}
    consumer.committed = {A0: 10, A1: 20, B0: 7}
    consumer.paused_tps = {A1}
    dog.delivered({A0: [record(9, A0)], A1: [record(19, A1)], B0: [record(6, B0)]}, now=0.0)
    assert not await dog.look(consumer, now=STALL)  # not yet a stall
    assert not await dog.look(consumer, now=STALL + 1)
    # A0 and B0 are read to their ends (idle); A1 has 30 messages waiting.
    assert consumer.sought == {A1: 20} and consumer.paused_tps == set()
    assert stalls(metrics, "resume") == 1 and stalls(metrics, "rejoin") == 0
    assert not await dog.look(consumer, now=2 * STALL + 1)  # given another period
    assert await dog.look(consumer, now=2 * STALL + 2)
    assert stalls(metrics, "rejoin") == 1


async def test_a_held_partition_that_moves_is_never_touched() -> None:
    dog, metrics = watchdog()
    consumer = Consumer({A0}, a=1, b=0)
    consumer.ends, consumer.committed = {A0: 1_000}, {A0: 10}
    for second in range(0, 300, 5):
        dog.delivered({A0: [record(second, A0)]}, now=float(second))
        assert not await dog.look(consumer, now=float(second))
    assert consumer.sought == {} and stalls(metrics, "resume") == 0


async def test_time_spent_writing_through_an_outage_is_not_a_stall() -> None:
    dog, metrics = watchdog()
    consumer = Consumer({A0}, a=1, b=0)
    consumer.ends, consumer.committed = {A0: 1_000}, {A0: 10}
    dog.delivered({A0: [record(9, A0)]}, now=0.0)
    dog.away(300.0)  # the loop retried its batch for five minutes
    assert not await dog.look(consumer, now=301.0)
    assert consumer.sought == {} and stalls(metrics, "resume") == 0


async def test_a_partition_held_elsewhere_whose_group_offset_stays_is_reported_then_rejoined() -> (
    None
):
    dog, metrics = watchdog()
    consumer = Consumer({A0}, a=2, b=1)  # A1 and B0 are held elsewhere, or by no one
    consumer.ends = {A0: 0, A1: 1_396, B0: 40}
    consumer.committed = {A1: 502, B0: 20}
    assert not await dog.look(consumer, now=0.0)
    consumer.committed[B0] = 30  # B0's holder moves; A1's does not
    assert not await dog.look(consumer, now=STALL / 2)
    assert not await dog.look(consumer, now=STALL + 1)
    assert stalls(metrics, "unconsumed") == 1  # A1 only
    assert not await dog.look(consumer, now=2 * STALL + 1)
    assert await dog.look(consumer, now=2 * STALL + 2)  # still there: rejoin the group
    assert stalls(metrics, "rejoin") == 1 and consumer.sought == {}


async def test_a_rebalance_starts_the_clocks_again() -> None:
    dog, metrics = watchdog()
    consumer = Consumer({A0}, a=1, b=0)
    consumer.ends, consumer.committed = {A0: 100}, {A0: 10}
    dog.delivered({A0: [record(9, A0)]}, now=0.0)
    # The assignment changed at 50 s: the new holder starts from its commit then.
    await AssignmentLog(dog.reset).on_partitions_assigned([A0])
    assert not await dog.look(consumer, now=50.0)
    assert not await dog.look(consumer, now=50.0 + STALL)
    assert stalls(metrics, "resume") == 0


class Scripted(Consumer):
    """A consumer that hands out the given batches in turn, for the sink loop itself."""

    def __init__(self, batches: list[dict[TopicPartition, list[Record]]]) -> None:
        super().__init__({A0, A1}, a=2, b=0)
        self.batches = batches

    def subscribe(self, topics: list[str], listener: object) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(
        self, *tps: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.update(offsets)


async def test_time_the_sink_loop_spends_writing_is_not_taken_for_a_stall() -> None:
    """A1 delivered, then a 1 s write (ClickHouse slow); the next batch holds only A0 while
    A1 has more waiting. Its 0.5 s stall period counts from the end of the write."""
    metrics = WorkerMetrics()
    dog = SinkWatchdog(["a"], metrics.sinks.stalls, stall_seconds=0.5, every=0.0)
    consumer = Scripted(
        [
            {A0: [record(0, A0)], A1: [record(0, A1)]},
            {A0: [record(1, A0), record(2, A0)]},
        ]
    )
    consumer.ends = {A0: 3, A1: 5}
    writes: list[int] = []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        writes.append(len(rows))
        if len(writes) == 1:
            time.sleep(1.0)

    decisions = next(sink for sink in sinks(SETTINGS) if sink.table == "decisions")
    by_topic = {"a": replace(decisions, topic="a")}
    # Batches of 2 records: the first is A0's and A1's, the next two A0's only.
    settings = SETTINGS.model_copy(update={"sink_batch_size": 2, "sink_flush_seconds": 0.05})
    task = asyncio.create_task(run_sinks(lambda: consumer, by_topic, write, dog, settings))
    while consumer.committed != {A0: 3, A1: 1} and not task.done():  # every batch written
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert writes == [2, 2]
    assert stalls(metrics, "resume") == 0 and consumer.sought == {}

"""The sinks' stall watchdog against the real broker and ClickHouse: a partition the sinks'
consumer stops delivering gets its rows into ClickHouse all the same.

The stall is induced from the test: partition 1 of a fresh decisions topic is paused on the
sinks' consumer (aiokafka's ``pause``) while messages wait there, as the consumer group of
make chaos left partitions undelivered in silence. A stall period of 2 s, not 60, keeps the
tests short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from clickhouse_driver import Client
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from agents.metrics import WorkerMetrics
from agents.sink_watch import SinkWatchdog
from agents.sinks import Row, run_sinks, sink_consumer, sinks
from promo.clickhouse import insert
from promo.settings import Settings
from tests.agents.test_sinks import decision

STALL_SECONDS = 2.0
# A group call Tansu never answers once held a fresh clone's run for 25 minutes here: each test
# waits at most 60 s for its rows, so two minutes means a hang.
pytestmark = pytest.mark.timeout(120)


@dataclass
class Sinks:
    """The sink loop of one worker, on a topic of its own, writing to a fresh database."""

    settings: Settings
    clickhouse: Client
    topic: str
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    #: every consumer the loop made, in order
    consumers: list[AIOKafkaConsumer] = field(default_factory=list)

    def new_consumer(self) -> AIOKafkaConsumer:
        self.consumers.append(sink_consumer(self.settings))
        return self.consumers[-1]

    def stored(self) -> int:
        return int(self.clickhouse.execute("SELECT count() FROM decisions FINAL")[0][0])

    def stalls(self, action: str) -> float:
        sample = {"action": action}
        return self.metrics.registry.get_sample_value("promo_sink_stalls_total", sample) or 0

    async def send(self, partition: int, first: int, n: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap_servers)
        await producer.start()
        try:
            for i in range(first, first + n):
                await producer.send_and_wait(self.topic, decision(i), partition=partition)
        finally:
            await producer.stop()


@pytest.fixture
async def sink_loop(
    broker_url: str, bootstrap_servers: list[str], migrated: Client, unique_name: str
) -> AsyncIterator[Sinks]:
    topic = f"promo-decisions-{unique_name}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    settings = Settings(
        broker_url=broker_url,
        app_id=f"sink-watchdog-{unique_name}",
        topic_decisions=topic,
        sink_flush_seconds=0.2,
        # Tansu ends a JoinGroup after about half the session timeout (INFRA.md): with the
        # default 60 s the first assignment came at the 30 s the test waits for its rows.
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
    )
    p = Sinks(settings, migrated, topic)
    by_topic = {sink.topic: sink for sink in sinks(settings) if sink.topic == topic}

    # The loop writes from a worker thread, the test counts from its own: two connections.
    c = migrated.connection
    writer = Client(c.host, port=c.port, user=c.user, database=c.database)

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        insert(writer, table, columns, rows)

    watchdog = SinkWatchdog(
        by_topic, p.metrics.sinks.stalls, stall_seconds=STALL_SECONDS, every=0.5
    )
    task = asyncio.create_task(run_sinks(p.new_consumer, by_topic, write, watchdog, settings))
    try:
        yield p
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        writer.disconnect()


async def until(what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        await asyncio.sleep(0.2)


async def stall_partition_1(p: Sinks) -> TopicPartition:
    """The loop is consuming both partitions; partition 1 is then paused with rows waiting."""
    await p.send(partition=0, first=0, n=5)
    await until("first rows", lambda: p.stored() == 5)
    tp = TopicPartition(p.topic, 1)
    p.consumers[0].pause(tp)
    await p.send(partition=1, first=5, n=5)
    return tp


async def test_rows_of_a_sink_partition_that_stops_being_delivered_reach_clickhouse(
    sink_loop: Sinks,
) -> None:
    p = sink_loop
    await stall_partition_1(p)
    await until("rows of the stalled partition", lambda: p.stored() == 10)
    # Cured in place: resumed, the same consumer and group membership.
    assert p.stalls("resume") == 1 and p.stalls("rejoin") == 0
    assert len(p.consumers) == 1


async def test_a_sink_partition_a_resume_cannot_cure_gets_a_new_consumer(
    sink_loop: Sinks,
) -> None:
    p = sink_loop
    tp = await stall_partition_1(p)
    p.consumers[0].resume = lambda *tps: None  # stuck beyond what resuming can cure
    await until("rows of the stalled partition", lambda: p.stored() == 10, timeout=60)
    assert p.stalls("resume") == 1 and p.stalls("rejoin") == 1
    assert len(p.consumers) == 2 and tp in p.consumers[1].assignment()


async def test_a_sink_partition_its_group_member_does_not_consume_is_reported(
    sink_loop: Sinks,
) -> None:
    """Another member of the sinks' group takes a partition and never reads it (as a member
    the broker still counts after a SIGKILL would): this worker's sinks report it."""
    p = sink_loop
    await until("the sinks' assignment", lambda: bool(p.consumers and p.consumers[0].assignment()))
    silent = sink_consumer(p.settings)
    silent.subscribe([p.topic])
    await silent.start()
    try:
        await until("a partition for the silent member", lambda: len(silent.assignment()) == 1)
        await p.send(partition=0, first=0, n=5)
        await p.send(partition=1, first=5, n=5)
        await until("an unconsumed partition reported", lambda: p.stalls("unconsumed") >= 1)
        assert p.stored() == 5  # the partition this worker's sinks hold
    finally:
        await silent.stop()
    await until("every row once the silent member left", lambda: p.stored() == 10, timeout=60)

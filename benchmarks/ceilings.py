"""The bench's backlog and the two ceilings measured on it.

The backlog is simulated shop traffic (``chaos.backlog.shop_events``: views, searches, carts,
purchases over 7 days, with their real share of decision points), produced once to a topic
that every run of the bench reads. The transport ceiling is a plain aiokafka consumer
reading and decoding it in this process; the framework ceiling a Faust worker that only
decodes and acknowledges (``benchmarks.decode_only``), its own process.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from benchmarks.figures import RunRates
from benchmarks.server_cpu import CpuSpan, per_event
from chaos.backlog import as_messages, produce, shop_events
from chaos.harness import WorkerProcess, poll
from chaos.servers import PARTITIONS, Run
from streams.batch import RawMessage

READY_TIMEOUT = 120.0
TRANSPORT_METHOD = (
    "a plain aiokafka consumer in the bench process (no group: the backlog's partitions "
    "assigned, read from the beginning), orjson-decoding every value; clock and process CPU "
    "time from the first fetch to the last record decoded"
)
FRAMEWORK_METHOD = (
    "a Faust worker process (python -m benchmarks.decode_only: promo worker's app options, "
    "batches of PROMO_BATCH_SIZE) whose one agent orjson-decodes and acknowledges each event; "
    "clock from its '[^Worker]: Ready' to the agent having decoded the last event, CPU time "
    "of the process (/proc) over the same span"
)


@dataclass(frozen=True)
class Backlog:
    """The bench's input, on its topic, as a consumer reads it."""

    topic: str
    users: int
    #: partition -> offset after its last message: what a group has committed once done
    ends: dict[int, int]
    #: every message with its partition, offset and Kafka timestamp, in read order
    messages: list[RawMessage]

    @property
    def events(self) -> int:
        return len(self.messages)


@dataclass(frozen=True)
class Ceiling(RunRates):
    """Events read in ``seconds`` of wall time, using ``cpu_seconds`` of CPU."""

    method: str
    events: int
    seconds: float
    cpu_seconds: float
    server_cpu_seconds: dict[str, float | None]
    startup_seconds: float | None = None
    first_event_after_ready_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "method": self.method,
            "events": self.events,
            "events_per_s": self.events_per_s,
            "cpu_us_per_event": self.cpu_us_per_event,
            **per_event(self.server_cpu_seconds, self.events),
            "seconds": round(self.seconds, 2),
        }
        if self.startup_seconds is not None:
            figures["startup_seconds"] = round(self.startup_seconds, 1)
        if self.first_event_after_ready_seconds is not None:
            figures["first_event_after_ready_seconds"] = round(
                self.first_event_after_ready_seconds, 2
            )
        return figures


def produce_backlog(run: Run, events: int, seed: int) -> tuple[str, int]:
    """The shop's first ``events`` events on the run's clickstream topic (key = user id);
    returns the topic and the number of users."""
    traffic = shop_events(events, seed, run_id=f"bench{seed}")
    run.create_topics("clickstream")
    topic = run.topic("clickstream")
    produce(run.servers.bootstrap_servers, topic, as_messages(traffic))
    return topic, len({e["user_id"] for e in traffic})


def transport_ceiling(
    bootstrap_servers: list[str],
    topic: str,
    expected: int,
    users: int,
    server_pids: dict[str, int | None],
) -> tuple[Ceiling, Backlog]:
    """Read and decode the backlog with a plain aiokafka consumer."""
    servers_cpu = CpuSpan(server_pids)
    records, seconds, cpu = asyncio.run(_read_and_decode(bootstrap_servers, topic, expected))
    server_cpu = servers_cpu.seconds()
    ends: dict[int, int] = {}
    for r in records:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    messages = [
        RawMessage(r.value or b"", r.key, r.timestamp, topic, r.partition, r.offset)
        for r in records
    ]
    return (
        Ceiling(TRANSPORT_METHOD, len(records), seconds, cpu, server_cpu),
        Backlog(topic, users, ends, messages),
    )


async def _read_and_decode(
    bootstrap_servers: list[str], topic: str, expected: int, timeout: float = 300.0
) -> tuple[list[ConsumerRecord[bytes, bytes]], float, float]:
    consumer: AIOKafkaConsumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        start, cpu = time.perf_counter(), time.process_time()
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    orjson.loads(record.value or b"")
                records += batch
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        await consumer.stop()
    if len(records) != expected:
        raise RuntimeError(f"read {len(records)} records of {topic}, expected {expected}")
    return records, seconds, cpu


def framework_ceiling(
    run: Run, backlog: Backlog, server_pids: dict[str, int | None], timeout: float = 600.0
) -> Ceiling:
    """A Faust worker that only decodes and acknowledges, on the run's app id."""
    done_file = run.workdir / "decode-only.json"
    worker = WorkerProcess(
        dict(run.env),
        run.workdir,
        "decode-only",
        args=(
            "-m",
            "benchmarks.decode_only",
            "--events",
            str(backlog.events),
            "--done-file",
            str(done_file),
        ),
    )
    run.workers.append(worker)  # the run stops it, whatever happens
    startup = worker.start().wait_ready(READY_TIMEOUT)
    ready_at, cpu_at_ready = time.time(), worker.cpu_seconds()
    servers_cpu = CpuSpan(server_pids)
    report: dict[str, float] = poll(
        lambda: orjson.loads(done_file.read_bytes()) if done_file.exists() else {},
        bool,
        timeout=timeout,
        interval=0.1,
        what="the decode-only worker through the backlog",
        context=worker.tail,
    )
    cpu, server_cpu = worker.cpu_seconds() - cpu_at_ready, servers_cpu.seconds()
    worker.stop()
    return Ceiling(
        FRAMEWORK_METHOD,
        int(report["events"]),
        float(report["done_at"]) - ready_at,
        cpu,
        server_cpu,
        startup_seconds=startup,
        first_event_after_ready_seconds=float(report["first_at"]) - ready_at,
    )

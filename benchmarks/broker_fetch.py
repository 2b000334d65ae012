"""What the local broker spends on a consumer that keeps up with live traffic.

Tansu holds a fetch for its whole max wait even when data arrives (Kafka answers at once), so
the worker's consumer asks for a short wait locally (``PROMO_CONSUMER_FETCH_MAX_WAIT_MS``):
a long one would be latency. This measures what the short one costs the broker::

    python -m benchmarks.broker_fetch --rate 2200 --waits 10,50,200,1000 --held 0,20000

Fresh simulated users are sent at ``--rate`` (as ``promo bench``'s latency phase sends
them) to a topic of their own per phase: first with nobody reading, then with one plain
aiokafka consumer tailing it at each fetch wait, then at ``--held-wait`` on a topic that
already holds ``--held`` records in one-record batches (a worker's output topics fill so).
The broker's CPU over each phase, in cores, is printed as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from benchmarks.latency import send_paced
from benchmarks.server_cpu import CpuSpan, server_pids
from chaos.backlog import shop_events
from chaos.harness import Clickstream
from chaos.servers import PARTITIONS, Servers

METHOD = (
    "fresh simulated users sent at the rate to a topic of their own, first with nobody "
    "reading, then with one plain aiokafka consumer tailing it at each fetch max wait, then "
    "on topics already holding that many one-record batches; the broker's CPU (/proc) over "
    "each phase, in cores"
)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    waits = [int(w) for w in args.waits.split(",") if w]
    held = [int(h) for h in args.held.split(",") if h]
    print(json.dumps(measure(args.rate, args.seconds, waits, held, args.held_wait), indent=2))


def measure(
    rate: float, seconds: float, waits: list[int], held: list[int], held_wait: int
) -> dict[str, Any]:
    """Broker cores per phase: the sender alone, a tailing consumer at each of ``waits``,
    then at ``held_wait`` on a topic already holding each of ``held`` records, sent one per
    batch (as a worker's small deliveries leave its output topics). Each phase has a topic
    of its own."""
    servers = Servers.from_environment()
    servers.check()
    broker = {"broker": server_pids(servers)["broker"]}
    bootstrap = servers.bootstrap_servers
    plan: list[tuple[str, int | None, int]] = [("sender_only", None, 0)]
    plan += [(f"tailing_at_{w}_ms", w, 0) for w in waits]
    plan += [(f"tailing_at_{held_wait}_ms_holding_{n}", held_wait, n) for n in held]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    phases: dict[str, Any] = {}
    try:
        for i, (name, wait, holding) in enumerate(plan):
            topic = f"bench-fetch-{uuid.uuid4().hex[:8]}"
            admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
            try:
                _hold(bootstrap, topic, holding)
                events = shop_events(round(rate * seconds), 90 + i, run_id=f"fetch{i}", days=1.0)
                with _Tailing(bootstrap, topic, wait) as tailing:
                    span = CpuSpan(broker)
                    started = time.monotonic()
                    send_paced(Clickstream(bootstrap, topic), events, rate)
                    cpu = span.seconds()["broker"]
                    elapsed = time.monotonic() - started
            finally:
                admin.delete_topics([topic])
            phases[name] = {
                "broker_cores": None if cpu is None else round(cpu / elapsed, 3),
                "records_read": tailing.read,
            }
    finally:
        admin.close()
    return {"method": METHOD, "rate": rate, "phases": phases}


def _hold(bootstrap: list[str], topic: str, records: int) -> None:
    """``records`` small records on ``topic``, each a batch (and a request) of its own."""
    if not records:
        return
    producer = KafkaProducer(bootstrap_servers=bootstrap, batch_size=0, linger_ms=0)
    try:
        for i in range(records):
            producer.send(topic, key=f"u{i % 1000}".encode(), value=b"{}")
        producer.flush(timeout=120)
    finally:
        producer.close()


class _Tailing:
    """One aiokafka consumer reading the topic's new records in a thread of its own, at
    fetch wait ``wait_ms`` (``None``: no consumer at all)."""

    def __init__(self, bootstrap: list[str], topic: str, wait_ms: int | None) -> None:
        self.bootstrap, self.topic, self.wait_ms = bootstrap, topic, wait_ms
        self.read = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._tail()), daemon=True)

    def __enter__(self) -> _Tailing:
        if self.wait_ms is not None:
            self._thread.start()
            if not self._ready.wait(30):
                raise TimeoutError("the tailing consumer did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.wait_ms is not None:
            self._thread.join(30)

    async def _tail(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            fetch_max_wait_ms=self.wait_ms,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=100)  # assigned and positioned at the end
            self._ready.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                self.read += sum(map(len, batches.values()))
        finally:
            await consumer.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.broker_fetch", description=__doc__)
    parser.add_argument("--rate", type=float, default=2200.0, help="events/s sent")
    parser.add_argument("--seconds", type=float, default=20.0, help="of each phase")
    parser.add_argument("--waits", default="10,50,200,1000", help="fetch max waits, ms")
    parser.add_argument("--held", default="0,20000,80000", help="records a topic holds first")
    parser.add_argument("--held-wait", type=int, default=50, help="fetch max wait with --held")
    return parser


if __name__ == "__main__":
    main()

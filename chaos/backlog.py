"""A fixed backlog of simulated shop traffic: the same input for a run with chaos and one
without. The shop plays with no engine reacting (no offers reach it), so its events depend on
the seed only; they are recorded on a topic first and copied, record by record into the same
partition, to each run's clickstream topic."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from kafka import KafkaProducer

from chaos.servers import read_all
from simulator.malformed import Message
from simulator.population import build_population
from simulator.shop import DAY_MS, Shop

#: Simulated days of traffic (well inside the worker's 90-day horizon; spans several
#: attribution windows, so windows close and labels train the models).
DAYS = 7.0
#: The shop emits about this many events per user and day.
EVENTS_PER_USER_DAY = 9.5


def shop_events(n_events: int, seed: int, run_id: str, days: float = DAYS) -> list[dict[str, Any]]:
    """The first ``n_events`` of a shop sized to produce them in ``days``, ending an hour
    before now (event times never ahead of the Kafka timestamps)."""
    users = max(10, math.ceil(n_events / (EVENTS_PER_USER_DAY * days) * 1.5))
    end_ms = int(time.time() * 1000) - 3_600_000
    start_ms = end_ms - round(days * DAY_MS)
    shop = Shop(
        build_population(users, seed, user_prefix=f"{run_id}-"),
        start_ms=start_ms,
        run_id=run_id,
        seed=seed,
    )
    events = shop.advance(end_ms)
    if len(events) < n_events:
        raise ValueError(f"the shop made {len(events)} events, fewer than {n_events}")
    return events[:n_events]


def as_messages(events: Iterable[dict[str, Any]]) -> list[Message]:
    return [Message(e["user_id"].encode(), orjson.dumps(e)) for e in events]


def producer(bootstrap_servers: list[str]) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        linger_ms=20,
        batch_size=256 << 10,
        max_request_size=16 << 20,
        acks=1,
    )


def produce(
    bootstrap_servers: list[str],
    topic: str,
    messages: Sequence[Message],
    partitions: Sequence[int | None] | None = None,
) -> int:
    """Send ``messages`` in order (key = their key, Kafka timestamp as given); returns how
    many the broker acknowledged, failing if any was refused."""
    out = producer(bootstrap_servers)
    failures: list[BaseException] = []
    try:
        for i, m in enumerate(messages):
            future = out.send(
                topic,
                key=m.key,
                value=m.value,
                timestamp_ms=m.timestamp_ms,
                partition=partitions[i] if partitions is not None else None,
            )
            future.add_errback(failures.append)
        out.flush(timeout=300)
    finally:
        out.close(timeout=30)
    if failures:
        raise RuntimeError(f"{len(failures)} messages to {topic} failed; first: {failures[0]!r}")
    return len(messages)


def copy_topic(bootstrap_servers: list[str], source: str, target: str, expected: int) -> int:
    """Copy every record of ``source`` to the same partition of ``target``, in order."""
    records = read_all(bootstrap_servers, source, idle_seconds=3.0)
    if len(records) != expected:
        raise RuntimeError(f"backlog {source} holds {len(records)} records, expected {expected}")
    return produce(
        bootstrap_servers,
        target,
        [Message(key, value) for _, key, value in records],
        partitions=[partition for partition, _, _ in records],
    )

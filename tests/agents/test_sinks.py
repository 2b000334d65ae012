"""Sinks: offsets are committed only after ClickHouse took the rows, never while it refuses.

The consumer here is a stand-in with aiokafka's two calls the loop uses (getmany, commit):
the loop's order is what these tests pin. Against the real broker and ClickHouse, the
pipeline tests (tests/integration) check the rows, and that the hot path runs on through a
ClickHouse outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError

from agents.app import create_app
from agents.metrics import WorkerMetrics
from agents.sink_watch import SinkWatchdog
from agents.sinks import (
    Record,
    Row,
    _sink_until_stalled,
    pseudonymiser,
    sink_batch,
    sinks,
    take_batch,
)
from schemas.codec import encode
from schemas.dead_letters import RejectReason
from streams.batch import RawMessage, dead_letter
from streams.errors import ConfigError, SinkError
from streams.validation import Rejected
from tests.agents.conftest import agent_settings

SETTINGS = agent_settings()
BY_TOPIC = {sink.topic: sink for sink in sinks(SETTINGS)}
TP = TopicPartition(SETTINGS.topic_decisions, 3)


def decision(n: int, **changes: Any) -> bytes:
    return orjson.dumps(
        {
            "decision_id": f"de-{n:024x}",
            "user_id": f"u{n}",
            "ts": 1_700_000_000_000,
            "trigger_event_id": f"e{n}",
            "trigger": "add_to_cart",
            "segment": 0,
            "control": False,
            "chosen_offer": "none",
            "policy_offer": "none",
            "propensity": 1.0,
            "scores": {"none": 0.0},
            "purchase_probs": {"none": 0.2},
            "features": [0.0],
            "expected_order_value": 50.0,
            "offer_id": None,
            "expires_at": 1_700_172_800_000,
            "policy_version": "v",
            "model_version": 0,
        }
        | changes
    )


def record(offset: int, tp: TopicPartition = TP, value: bytes | None = None) -> Record:
    value = decision(offset) if value is None else value
    return ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"u", value, None, 0, 0, ())


class Broker:
    """A stand-in consumer of one partition: hands out the records once, remembers what was
    committed."""

    def __init__(self, records: list[Record], tp: TopicPartition = TP) -> None:
        self.pending = records
        self.tp = tp
        self.committed: dict[TopicPartition, int] = {}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        taken, self.pending = self.pending[:max_records], self.pending[max_records:]
        if not taken:
            await asyncio.sleep(timeout_ms / 1000)
        return {self.tp: taken} if taken else {}

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        self.committed.update(offsets or {})


async def test_rows_are_written_before_their_offsets_are_committed() -> None:
    broker, written = Broker([record(i) for i in range(5)]), []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        assert broker.committed == {}  # nothing committed before the insert
        written.append((table, len(rows)))

    batch = await take_batch(broker, max_records=3, max_seconds=0.2)
    assert sum(len(r) for r in batch.values()) == 3
    assert await sink_batch(broker, batch, BY_TOPIC, write) == 3
    assert written == [("decisions", 3)] and broker.committed == {TP: 3}


async def test_a_batch_whose_partition_a_rebalance_took_is_left_to_its_next_owner() -> None:
    # make chaos (crashes): a rebalance between the batch and its commit, and aiokafka refused
    # the commit ("Partition ... is not assigned"): the exception crashed the whole worker.
    broker, written = Broker([record(0)]), []

    async def revoked(offsets: dict[TopicPartition, int] | None = None) -> None:
        raise IllegalStateError(f"Partition {TP} is not assigned")

    broker.commit = revoked  # type: ignore[method-assign]
    batch = await take_batch(broker, max_records=10, max_seconds=0.05)
    rows = await sink_batch(broker, batch, BY_TOPIC, lambda t, c, r: written.append(len(r)))
    assert rows == 1 and written == [1] and broker.committed == {}


async def test_a_batch_clickhouse_refuses_is_never_committed() -> None:
    broker, attempts = Broker([record(0)]), []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        attempts.append(1)
        raise SinkError("ClickHouse is down")

    batch = await take_batch(broker, max_records=10, max_seconds=0.05)
    task = asyncio.ensure_future(sink_batch(broker, batch, BY_TOPIC, write))
    await asyncio.sleep(1.2)  # retries with back-off: 0.5 s, then 1 s
    assert len(attempts) >= 2 and broker.committed == {}
    task.cancel()  # the worker stops mid-retry
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker.committed == {}  # the next owner writes the batch


async def test_a_configuration_error_is_not_retried() -> None:
    broker, attempts = Broker([record(0)]), []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        attempts.append(1)
        raise ConfigError("PROMO_CLICKHOUSE_PASSWORD: refused")

    batch = await take_batch(broker, max_records=10, max_seconds=0.05)
    with pytest.raises(ConfigError):
        await sink_batch(broker, batch, BY_TOPIC, write)
    assert attempts == [1] and broker.committed == {}


async def test_no_insert_spans_more_than_three_months() -> None:
    """Current ClickHouse refuses an insert touching over 100 monthly partitions; a producer
    choosing its Kafka timestamps could make one batch of dead letters span 10 years."""
    tp = TopicPartition(SETTINGS.topic_dead_letters, 0)
    month_ms = 31 * 86_400_000
    letters = [
        encode(
            dead_letter(
                Rejected(RejectReason.INVALID_JSON, "not JSON"),
                RawMessage(b"{", b"k", 1_000_000_000_000 + i * month_ms, "clicks", 0, i),
            )
        )
        for i in range(120)
    ]
    broker, spans = Broker([record(i, tp, v) for i, v in enumerate(letters)], tp), []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        at = list(columns).index("message_ts")
        months = {datetime.fromtimestamp(row[at], UTC).strftime("%Y%m") for row in rows}
        spans.append(len(months))

    batch = await take_batch(broker, max_records=200, max_seconds=0.2)
    assert await sink_batch(broker, batch, BY_TOPIC, write) == 120
    assert max(spans) <= 3 and broker.committed == {tp: 120}


def test_the_sinks_are_not_faust_agents_on_the_hot_paths_consumer() -> None:
    """A Faust agent on the clickstream shares the hot path's consumer: when ClickHouse
    stalled it, decisions stalled too. The sinks run as a task with their own group."""
    agents: Any = create_app(agent_settings()).app.agents
    assert [name for name in agents if "sink" in name] == []


def test_the_web_server_listens_on_localhost_by_default() -> None:
    """Faust's pages show table contents to anyone who can reach them."""
    assert create_app(agent_settings()).app.conf.web_bind == "127.0.0.1"


async def test_user_ids_are_pseudonymised_before_clickhouse_when_a_key_is_set() -> None:
    keyed = {sink.topic: sink for sink in sinks(agent_settings(pseudonymise_key="k-1"))}
    plain_row = BY_TOPIC[TP.topic].to_row(record(7))
    keyed_row = keyed[TP.topic].to_row(record(7))
    assert plain_row is not None and keyed_row is not None
    at = list(BY_TOPIC[TP.topic].columns).index("user_id")
    assert plain_row[at] == "u7"
    assert keyed_row[at] == pseudonymiser(b"k-1")("u7") != "u7"
    assert keyed_row[at].startswith("p-") and len(keyed_row[at]) == 26
    others = [c for i, c in enumerate(keyed_row) if i != at]
    assert others == [c for i, c in enumerate(plain_row) if i != at]


class StuckInRebalance(Broker):
    """aiokafka's getmany while a rebalance never ends: it waits for the assignment, with no
    timeout of its own."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_rebalance_that_never_ends_gets_the_sinks_a_new_consumer() -> None:
    s = SETTINGS.model_copy(update={"sink_flush_seconds": 0.05, "broker_session_timeout": 0.05})
    metrics = WorkerMetrics()
    watchdog = SinkWatchdog(BY_TOPIC, metrics.sinks.stalls)

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        raise AssertionError("nothing to write")

    # Returning is what makes run_sinks stop this consumer and start a new one.
    await asyncio.wait_for(
        _sink_until_stalled(StuckInRebalance([]), BY_TOPIC, write, watchdog, s), timeout=5
    )
    rejoined = metrics.registry.get_sample_value("promo_sink_stalls_total", {"action": "rejoin"})
    assert rejoined == 1


class CoordinatorNeverAnswers(Broker):
    """aiokafka's fetch of the group's committed offsets (the watchdog's look) while no group
    coordinator answers: it retries for good."""

    def __init__(self, records: list[Record]) -> None:
        super().__init__(records)
        self._coordinator = self

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {self.tp.partition} if topic == self.tp.topic else set()

    async def fetch_committed_offsets(self, tps: set[TopicPartition]) -> dict[TopicPartition, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_look_at_the_groups_offsets_that_never_ends_gets_the_sinks_a_new_consumer() -> None:
    s = SETTINGS.model_copy(update={"sink_flush_seconds": 0.05, "broker_session_timeout": 0.05})
    metrics = WorkerMetrics()
    watchdog = SinkWatchdog(BY_TOPIC, metrics.sinks.stalls)  # due at once
    written: list[Row] = []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        written.extend(rows)

    broker = CoordinatorNeverAnswers([record(i) for i in range(3)])
    await asyncio.wait_for(_sink_until_stalled(broker, BY_TOPIC, write, watchdog, s), timeout=5)
    assert len(written) == 3 and broker.committed == {TP: 3}
    rejoined = metrics.registry.get_sample_value("promo_sink_stalls_total", {"action": "rejoin"})
    assert rejoined == 1


class NoCoordinator(Broker):
    """aiokafka's commit while no group coordinator answers: it retries for good."""

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        await asyncio.Event().wait()


async def test_a_commit_that_never_ends_gets_the_sinks_a_new_consumer() -> None:
    # make chaos (crashes): the sinks' offsets stopped on two partitions of decisions for ten
    # minutes after the last SIGKILL, and nothing was logged: not the take (bounded), so a
    # commit or the watchdog's look at the group's offsets, both retried for good by aiokafka.
    s = SETTINGS.model_copy(update={"sink_flush_seconds": 0.05, "broker_session_timeout": 0.05})
    metrics = WorkerMetrics()
    watchdog = SinkWatchdog(BY_TOPIC, metrics.sinks.stalls)
    written: list[Row] = []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        written.extend(rows)

    broker = NoCoordinator([record(i) for i in range(3)])
    await asyncio.wait_for(_sink_until_stalled(broker, BY_TOPIC, write, watchdog, s), timeout=5)
    assert len(written) == 3 and broker.committed == {}  # written, to be read again
    rejoined = metrics.registry.get_sample_value("promo_sink_stalls_total", {"action": "rejoin"})
    assert rejoined == 1

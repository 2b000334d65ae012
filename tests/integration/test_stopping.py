"""A worker stopped with SIGTERM in the middle of a batch, against the real broker: the offsets
its group commits must never run ahead of the state changelog.

The oracle is the guarantee itself, not a timing: every clickstream message below the group's
committed offset must be folded into the last changelog entry of its user (the state a
restarted worker recovers), i.e. that entry's ``offset`` is at least the message's. A batch
committed without its states would leave its messages below the committed offset and above
their users' recovered states, lost for good (README "Chaos suite", fourth crashes run).

Batches are large (5,000 events: about 1.5 s of CPU, then the awaited outputs and changelog) so
that each SIGTERM falls while a batch is in flight; the rounds stop the worker at several
moments of a batch, and once while a second worker's arrival is revoking its partitions.

It held from its first run: a stopping Faust app waits for every message handed to a stream
to be acknowledged ("Wait for streams", ``stream_wait_empty``) before it stops the agents, so
the batch in flight finishes, changelog included (the logs show that wait lasting 1.2-1.6 s),
and only then do ``take_events``'s acknowledgement and the final commit happen.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver import Client
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from chaos.harness import (
    HOUR_MS,
    Clickstream,
    PipelineNames,
    WorkerProcess,
    delete_topics,
    local_profile,
    poll,
    read_topic,
    run_migrations,
)
from promo.settings import Settings
from streams.user_state import UserState

PARTITIONS = 4
USERS = 300
EVENTS = 100_000
BATCH = 5_000
ABANDON_MS = Settings.model_fields["cart_abandon_minutes"].default * 60_000


class Run:
    def __init__(self, names: PipelineNames, env: dict[str, str], servers: list[str], wd: Path):
        self.names, self.env, self.servers, self.workdir = names, env, servers, wd
        self.workers: list[WorkerProcess] = []

    def worker(self) -> WorkerProcess:
        w = WorkerProcess(dict(self.env), self.workdir, f"worker-{len(self.workers) + 1}")
        self.workers.append(w)
        return w.start()

    @property
    def changelog(self) -> str:
        return f"{self.names.app_id}-user-state-changelog"

    def committed(self) -> dict[int, int]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.servers, group_id=self.names.app_id, enable_auto_commit=False
        )
        try:
            topic = self.names.topic("clickstream")
            tps = {p: TopicPartition(topic, p) for p in range(PARTITIONS)}
            return {p: consumer.committed(tp) or 0 for p, tp in tps.items()}
        finally:
            consumer.close()

    def committed_but_not_in_state(self) -> list[str]:
        """Committed clickstream messages that the last changelog entry of their user lacks."""
        committed = self.committed()
        clicks = _read_all(self.servers, self.names.topic("clickstream"), until=EVENTS)
        recovered: dict[bytes, UserState | None] = {}
        for r in _read_all(self.servers, self.changelog):
            if not r.key.startswith(b"\x00"):  # budget ledgers are not users
                recovered[r.key] = UserState.from_bytes(r.value, ABANDON_MS) if r.value else None
        missing = []
        for r in clicks:
            if r.offset < committed[r.partition]:
                state = recovered.get(r.key)
                if state is None or state.partition != r.partition or state.offset < r.offset:
                    held = None if state is None else state.offset
                    missing.append(f"{r.key!r}@{r.partition}:{r.offset} (state at {held})")
        return missing


def _read_all(servers: list[str], topic: str, until: int | None = None) -> list[Any]:
    """Every record of ``topic``: ``until`` of them, or all that come before 3 s of silence
    (never end offsets: Tansu's are wrong)."""
    consumer = KafkaConsumer(bootstrap_servers=servers, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 3.0 and (until is None or len(records) < until):
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
                quiet_since = time.monotonic()
        return records
    finally:
        consumer.close()


@pytest.fixture
def run(
    broker_url: str,
    bootstrap_servers: list[str],
    clickhouse_url: str,
    clickhouse_client: Client,
    unique_name: str,
    tmp_path: Path,
) -> Iterator[Run]:
    names = PipelineNames(unique_name, database=f"promo_test_{unique_name}")
    env = {**os.environ, **local_profile(), **names.env(broker_url, clickhouse_url)}
    env.update(PROMO_BATCH_SIZE=str(BATCH), PROMO_BATCH_SECONDS="1")
    run_migrations(env)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        admin.create_topics([NewTopic(names.topic("clickstream"), PARTITIONS, 1)])
    finally:
        admin.close()
    r = Run(names, env, bootstrap_servers, tmp_path)
    try:
        yield r
    finally:
        for w in r.workers:
            w.stop()
        delete_topics(bootstrap_servers, unique_name)


def _wait_published(run: Run, worker: WorkerProcess, entries: int) -> None:
    """Until the changelog holds more than ``entries`` records: ``worker`` published a batch."""
    poll(
        lambda: len(read_topic(run.servers, run.changelog, count=entries + 1, timeout=2)),
        lambda n: n > entries,
        timeout=60,
        interval=0.05,
        what=f"more than {entries} changelog records",
        context=worker.tail,
    )


def _sigterm(worker: WorkerProcess) -> None:
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    code = worker.process.wait(timeout=60)
    assert code == 0, worker.tail()


def test_a_worker_stopped_mid_batch_commits_only_what_the_state_changelog_holds(run: Run) -> None:
    base = int(time.time() * 1000) - 72 * HOUR_MS
    clickstream = Clickstream(run.servers, run.names.topic("clickstream"))
    events = (
        {
            "event_id": f"e{i}",
            "user_id": f"u{i % USERS}",
            "ts": base + i * 1000,
            "type": "view",
            "item_id": "i1",
            "category": "shoes",
            "price": 40.0,
        }
        for i in range(EVENTS)
    )
    clickstream.send_all(events)
    clickstream.close()
    entries = 0
    for delay in (0.2, 0.9, 1.6):  # moments within a batch's ~1.5 s of processing and its publish
        worker = run.worker()
        worker.wait_ready(90)
        _wait_published(run, worker, entries)  # the next batch is in flight
        time.sleep(delay)
        _sigterm(worker)
        assert run.committed_but_not_in_state() == [], f"after a SIGTERM {delay} s in a batch"
        entries = len(_read_all(run.servers, run.changelog))
    # SIGTERM while a second worker's arrival revokes the first one's partitions mid-batch.
    first = run.worker()
    first.wait_ready(90)
    _wait_published(run, first, entries)
    second = run.worker()
    # aiokafka's word that the group rebalances: the first worker is about to revoke.
    rebalancing = f"group {run.names.app_id} because it is rebalancing"
    poll(first.log, lambda log: rebalancing in log, timeout=60, interval=0.05, what=rebalancing)
    _sigterm(first)
    second.wait_ready(90)
    time.sleep(5)
    _sigterm(second)
    assert run.committed_but_not_in_state() == [], "after a SIGTERM during a rebalance"

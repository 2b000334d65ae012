"""The local servers as the chaos suite uses them, and one isolated run on them: its own
topics, app id, ClickHouse database and work folder, removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from clickhouse_driver import Client
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import TopicAlreadyExistsError

from chaos.harness import (
    PipelineNames,
    WorkerProcess,
    delete_topics,
    local_profile,
    run_migrations,
)
from promo.settings import REPO_ROOT

SERVERS_SH = REPO_ROOT / "deploy" / "local" / "servers.sh"

#: The roles of PipelineNames.env whose topics a run creates before producing.
PARTITIONS = 4


def servers_sh(command: str) -> None:
    """``deploy/local/servers.sh COMMAND`` (stop or start a local server); fails with its
    output."""
    done = subprocess.run(["bash", str(SERVERS_SH), command], capture_output=True, timeout=120)
    if done.returncode:
        out = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
        raise RuntimeError(f"servers.sh {command} exited with {done.returncode}: {out}")


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@dataclass(frozen=True)
class Servers:
    """Where the broker and ClickHouse are (deploy/local/promo.env unless overridden)."""

    broker_url: str
    clickhouse_url: str

    @classmethod
    def from_environment(cls) -> Servers:
        profile = local_profile()
        return cls(
            os.environ.get("PROMO_BROKER_URL", profile["PROMO_BROKER_URL"]),
            os.environ.get("PROMO_CLICKHOUSE_URL", profile["PROMO_CLICKHOUSE_URL"]),
        )

    @property
    def bootstrap_servers(self) -> list[str]:
        return [a for a in self.broker_url.removeprefix("kafka://").split(";") if a]

    def admin_clickhouse(self) -> Client:
        return Client.from_url(with_database(self.clickhouse_url, "default"))

    def check(self) -> None:
        """Fails (never skips) when a server does not answer."""
        client = self.admin_clickhouse()
        try:
            client.execute("SELECT 1")
        finally:
            client.disconnect()
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, request_timeout_ms=10_000
        )
        admin.close()


@dataclass
class Run:
    """One isolated pipeline: names, environment, migrated database, workers."""

    servers: Servers
    names: PipelineNames
    env: dict[str, str]
    workdir: Path
    ch: Client
    workers: list[WorkerProcess] = field(default_factory=list)

    def topic(self, role: str) -> str:
        return self.names.topic(role)

    def worker(self, name: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(dict(self.env), self.workdir, name or f"w{len(self.workers) + 1}")
        self.workers.append(worker)
        return worker

    def create_topics(self, *roles: str) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.servers.bootstrap_servers)
        try:
            for role in roles:
                try:
                    admin.create_topics([NewTopic(self.topic(role), PARTITIONS, 1)])
                except TopicAlreadyExistsError:
                    # Seen once in CI after the broker came back empty: a request retried
                    # while it started, or a dying worker's client recreating it. Fine if
                    # it is the topic asked for.
                    (found,) = admin.describe_topics([self.topic(role)])
                    if len(found["partitions"]) != PARTITIONS:
                        raise
        finally:
            admin.close()

    def clickstream_lag(self) -> int:
        """Clickstream messages the workers' group has not committed yet (the hot path's
        backlog; the sinks are another group)."""
        return self._lag(self.names.app_id, ["clickstream"])

    def sinks_lag(self) -> int:
        """Messages of the sinks' topics their group has not committed yet: rows still on
        their way to ClickHouse (or held by a stalled partition)."""
        roles = ["clickstream", "decisions", "outcomes", "suppressions", "dead-letters"]
        return self._lag(f"{self.names.app_id}-sinks", roles)

    def _lag(self, group: str, roles: list[str]) -> int:
        # A consumer in the group that never subscribes: it only fetches offsets.
        consumer = KafkaConsumer(
            bootstrap_servers=self.servers.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
        )
        try:
            topics = [t for t in map(self.topic, roles) if consumer.partitions_for_topic(t)]
            tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
            ends = consumer.end_offsets(tps)
            return sum(max(0, end - (consumer.committed(tp) or 0)) for tp, end in ends.items())
        finally:
            consumer.close()

    def count(self, table: str, where: str = "1", final: bool = True) -> int:
        [(n,)] = self.ch.execute(
            f"SELECT count() FROM {table} {'FINAL' if final else ''} WHERE {where}"
        )
        return int(n)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return list(self.ch.execute(sql, params or {}))

    def logs(self, lines: int = 30) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.tail(lines)}" for w in self.workers)


@contextmanager
def isolated_run(
    servers: Servers, label: str, pinned: dict[str, str], keep: bool = False
) -> Iterator[Run]:
    """A run with its own topics (suffix), app id and database; cleaned up on exit."""
    suffix = f"chaos-{label}-{uuid.uuid4().hex[:8]}"
    database = f"promo_chaos_{label.replace('-', '_')}_{suffix[-8:]}"
    names = PipelineNames(suffix, database=database)
    env = {
        **os.environ,
        **local_profile(),
        **names.env(servers.broker_url, servers.clickhouse_url),
        "PROMO_TOPIC_PARTITIONS": str(PARTITIONS),
        **pinned,
    }
    admin = servers.admin_clickhouse()
    admin.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    workdir = Path(tempfile.mkdtemp(prefix=f"{suffix}-"))
    ch = Client.from_url(with_database(servers.clickhouse_url, database))
    run = Run(servers, names, env, workdir, ch)
    try:
        run_migrations(env)
        yield run
    finally:
        for worker in run.workers:
            worker.stop()
        ch.disconnect()
        if not keep:
            delete_topics(servers.bootstrap_servers, suffix)
            admin.execute(f"DROP DATABASE IF EXISTS {database}")
            shutil.rmtree(workdir, ignore_errors=True)
        admin.disconnect()


def read_all(
    bootstrap_servers: list[str], topic: str, *, idle_seconds: float = 5.0, timeout: float = 120.0
) -> list[tuple[int, bytes | None, bytes | None]]:
    """(partition, key, value) of every record of ``topic``, read until nothing new arrived
    for ``idle_seconds`` (end offsets are wrong on Tansu, so no "until the end")."""
    return [
        (r.partition, r.key, r.value)
        for r in read_records(bootstrap_servers, topic, idle_seconds=idle_seconds, timeout=timeout)
    ]


def read_records(
    bootstrap_servers: list[str],
    topic: str,
    *,
    idle_seconds: float = 5.0,
    timeout: float = 120.0,
    start: dict[int, int] | None = None,
) -> list[ConsumerRecord]:
    """Every record of ``topic`` (with its offset and timestamp), from the beginning or the
    ``start`` offset of each partition, read until nothing new arrived for
    ``idle_seconds``."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
    )
    try:
        deadline = time.monotonic() + 30
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                return []
            time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if start is None:
            consumer.seek_to_beginning(*tps)
        else:
            for tp in tps:
                consumer.seek(tp, start.get(tp.partition, 0))
        records: list[ConsumerRecord] = []
        last_new = time.monotonic()
        stop = time.monotonic() + timeout
        while time.monotonic() - last_new < idle_seconds and time.monotonic() < stop:
            for batch in consumer.poll(timeout_ms=500, max_records=50_000).values():
                records.extend(batch)
                last_new = time.monotonic()
        return records
    finally:
        consumer.close()

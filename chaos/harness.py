"""Harness for runs against the real servers, shared by the integration tests and the chaos
suite: a real ``promo worker`` subprocess, a clickstream producer, and polling oracles for
ClickHouse and Kafka.

Nothing here trusts end offsets or lag (Tansu reports them wrong, see shared/INFRA.md): every
check reads until it has the expected count or a deadline passes.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
from clickhouse_driver import Client
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_PROFILE = REPO_ROOT / "deploy" / "local" / "promo.env"
READY = re.compile(r"\[\^Worker\]: Ready")
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

T = TypeVar("T")


def local_profile() -> dict[str, str]:
    """The KEY=value lines of deploy/local/promo.env (the Tansu quirks live there)."""
    values = {}
    for line in LOCAL_PROFILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PipelineNames:
    """Everything one test owns: topics, consumer group / app id, ClickHouse database."""

    suffix: str
    database: str

    @property
    def app_id(self) -> str:
        return f"promo-pipeline-{self.suffix}"

    def topic(self, role: str) -> str:
        return f"{role}-{self.suffix}"

    def env(self, broker_url: str, clickhouse_url: str) -> dict[str, str]:
        from urllib.parse import urlsplit, urlunsplit

        url = urlunsplit(urlsplit(clickhouse_url)._replace(path=f"/{self.database}"))
        return {
            "PROMO_BROKER_URL": broker_url,
            "PROMO_CLICKHOUSE_URL": url,
            "PROMO_APP_ID": self.app_id,
            "PROMO_TOPIC_CLICKSTREAM": self.topic("clickstream"),
            "PROMO_TOPIC_OFFERS": self.topic("offers"),
            "PROMO_TOPIC_DEAD_LETTERS": self.topic("dead-letters"),
            "PROMO_TOPIC_DECISIONS": self.topic("decisions"),
            "PROMO_TOPIC_OUTCOMES": self.topic("outcomes"),
            "PROMO_TOPIC_TRAINING": self.topic("training"),
            "PROMO_TOPIC_MODELS": self.topic("models"),
            "PROMO_TOPIC_SUPPRESSIONS": self.topic("suppressions"),
            "PROMO_TOPIC_PARTITIONS": "4",
        }


#: ``python -m promo.cli worker``: what a WorkerProcess runs unless told otherwise.
PROMO_WORKER = ("-m", "promo.cli", "worker")


@dataclass
class WorkerProcess:
    """One ``promo worker`` subprocess (or another Python command: ``args``) with its log
    file."""

    env: dict[str, str]
    workdir: Path
    name: str
    process: subprocess.Popen[bytes] | None = None
    args: tuple[str, ...] = PROMO_WORKER
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"{self.name}.log"

    def start(self) -> WorkerProcess:
        self.env["PROMO_WORKER_PORT"] = str(free_port())
        # The worker runs in another folder: it must import this checkout, not whatever
        # `promo` the interpreter has installed.
        path = self.env.get("PYTHONPATH", "")
        if str(REPO_ROOT) not in path.split(os.pathsep):
            self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)
        with self.log_path.open("wb") as log:
            # cwd: Faust writes its data folder (<app id>-data) into the working directory.
            self.process = subprocess.Popen(
                [sys.executable, *self.args],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until Faust logged ``[^Worker]: Ready``; fails with the log's tail."""
        assert self.process is not None
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if READY.search(self.log()):
                return time.monotonic() - started
            if self.process.poll() is not None:
                raise AssertionError(
                    f"worker {self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready after {timeout} s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (0 before it starts)."""
        return process_cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def rss_mb(self) -> float:
        """Resident memory of the process, MB (0 before it starts and once it is gone)."""
        return process_rss_mb(self.process.pid) if self.process is not None else 0.0

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no producer flush."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within ``grace`` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text("ascii")
    except OSError:
        return 0.0
    return cpu_seconds_of_stat(stat, os.sysconf("SC_CLK_TCK"))


def cpu_seconds_of_stat(stat: str, ticks_per_second: int) -> float:
    """utime + stime of a /proc/PID/stat line, in seconds. The command name (in parentheses)
    may hold spaces, so fields are counted from its closing parenthesis.

    >>> cpu_seconds_of_stat("42 (promo worker) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0", 100)
    2.0
    """
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14 and 15 of the line (utime, stime); the state, field 3, is fields[0] here.
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def process_rss_mb(pid: int) -> float:
    """Resident memory of a process, MB, from /proc; 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text("ascii").splitlines()
    except OSError:
        return 0.0
    kb = next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), 0)
    return kb / 1024


def poll(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    timeout: float = 60.0,
    interval: float = 0.5,
    what: str = "condition",
    context: Callable[[], str] = lambda: "",
) -> T:
    """Call ``read`` until ``done(value)`` or the deadline; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} not reached after {timeout} s; last: {value!r}\n{context()}"
            )
        time.sleep(interval)


def count_final(
    client: Client, table: str, where: str = "1", params: dict[str, Any] | None = None
) -> int:
    [(n,)] = client.execute(f"SELECT count() FROM {table} FINAL WHERE {where}", params or {})
    return int(n)


class Clickstream:
    """Produces clickstream events with key = user_id, as the platform does."""

    def __init__(self, bootstrap_servers: list[str], topic: str) -> None:
        self.topic = topic
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=5)

    def send(
        self, event: dict[str, Any] | bytes, key: str | None = None, timestamp_ms: int | None = None
    ) -> None:
        """Send one event; the Kafka timestamp is ``timestamp_ms``, or the time of sending."""
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        if key is None and isinstance(event, dict):
            key = event["user_id"]
        self.producer.send(
            self.topic,
            key=key.encode() if key is not None else None,
            value=value,
            timestamp_ms=timestamp_ms,
        )

    def send_all(self, events: Iterable[dict[str, Any]]) -> int:
        n = 0
        for event in events:
            self.send(event)
            n += 1
        self.flush()
        return n

    def flush(self) -> None:
        self.producer.flush(timeout=30)

    def close(self) -> None:
        self.producer.close(timeout=10)


def read_topic(
    bootstrap_servers: list[str], topic: str, *, count: int, timeout: float = 30.0
) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of a topic from the beginning, outside any group, until ``count`` records
    arrived or ``timeout`` passed (then it returns what it has, possibly more than ``count``
    if they came in one poll)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    try:
        partitions = poll(
            lambda: consumer.partitions_for_topic(topic),
            bool,
            timeout=timeout,
            what=f"topic {topic}",
        )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[tuple[bytes | None, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend((r.key, r.value) for r in batch)
        return records
    finally:
        consumer.close()


def delete_topics(bootstrap_servers: list[str], suffix: str) -> None:
    """Drop the test's topics (Tansu keeps everything in memory until it restarts).

    Cleanup only: a broker too slow to answer gets a warning, not a test error.
    """
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
        try:
            mine = [t for t in admin.list_topics() if suffix in t]
            if mine:
                admin.delete_topics(mine, timeout_ms=10_000)
        finally:
            admin.close()
    except KafkaError as exc:
        warnings.warn(f"could not delete the topics of *{suffix}*: {exc!r}", stacklevel=2)


def run_migrations(env: dict[str, str]) -> str:
    """``promo migrate`` against the test's database, as an operator would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "promo.cli", "migrate"],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout

"""A real worker holding a million users: its memory, how long it takes to take them over,
and its first sweep after an outage.

Users' states are made as a worker makes them (``benchmarks.stages.replay`` of simulated
shop traffic, in process) and copied to ``users`` keys on the user-state changelog of an
isolated run, each on the partition its user's events would take (Kafka's default
partitioner), a share of them with an attribution window that ended days ago, as after an
outage; an end marker closes each partition (Tansu, see ``agents.state_store``). Then one
``promo worker`` starts on it. Figures: seconds until its ``/ready`` answers 200 (recovery
and take-over done), its RSS then and at its peak, seconds until the sweep has closed
every due window (the worker's ``promo_outcomes{type="no_conversion"}`` counter reaching
the due windows without a purchase), and the longest the worker's
event loop left ``/health`` unanswered, before and after ready.

``python -m benchmarks.memory --users 1000000`` (after ``make up``) prints them as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.partitioner import murmur2

from agents.state_store import end_marker_key, is_user_key
from benchmarks.stages import StageClock, replay
from chaos.backlog import produce, shop_events
from chaos.harness import process_rss_mb
from chaos.servers import PARTITIONS, Run, Servers, isolated_run
from promo.settings import Settings
from simulator.malformed import Message
from streams.attribution import OpenDecision
from streams.batch import RawMessage

METHOD = (
    "{users} users' states on the user-state changelog of an isolated run (copies of the "
    "states a worker makes of {events:,} simulated events, in process), {due:.0%} of them "
    "with an attribution window that ended days ago; one promo worker started on it. "
    "ready: process start to GET /ready = 200; RSS from /proc (peak: VmHWM); sweep: ready "
    "to promo_outcomes{{type=no_conversion}} >= the due windows without a purchase; loop "
    "stall: the longest GET /health went unanswered, polled every {poll}s"
)
#: Simulated events whose users' states are copied: a few thousand users of every kind.
TEMPLATE_EVENTS = 20_000
#: As after an outage of two days: most users' windows are due at once.
DUE_SHARE = 0.8
#: A due window ended this long before the newest event of the copied states.
DUE_AGO_MS = 10 * 86_400_000
POLL_SECONDS = 0.25
#: How often the sweep's progress is told on stderr (a million users' sweep takes minutes).
PROGRESS_SECONDS = 10.0


@dataclass(frozen=True)
class Held:
    users: int
    due_windows: int
    produce_seconds: float
    ready_seconds: float
    rss_mb_ready: float
    rss_mb_peak: float
    sweep_seconds: float | None
    loop_stall_seconds_before_ready: float
    loop_stall_seconds_after_ready: float

    def to_json(self) -> dict[str, Any]:
        return {
            "method": METHOD.format(
                users=f"{self.users:,}", events=TEMPLATE_EVENTS, due=DUE_SHARE, poll=POLL_SECONDS
            ),
            "synthetic": False,
            "users": self.users,
            "due_windows": self.due_windows,
            "produce_seconds": round(self.produce_seconds, 1),
            "ready_seconds": round(self.ready_seconds, 1),
            "rss_mb": round(self.rss_mb_ready, 1),
            "rss_mb_peak": round(self.rss_mb_peak, 1),
            "sweep_seconds": None if self.sweep_seconds is None else round(self.sweep_seconds, 1),
            "loop_stall_seconds_before_ready": round(self.loop_stall_seconds_before_ready, 2),
            "loop_stall_seconds_after_ready": round(self.loop_stall_seconds_after_ready, 2),
        }


def measure(servers: Servers, settings: Settings, users: int, seed: int) -> Held:
    """One worker taking ``users`` over, in a run of its own (removed afterwards)."""
    templates = template_states(settings, seed)
    with isolated_run(servers, "memory", {}) as run:
        run.create_topics("clickstream")
        changelog = f"{run.names.app_id}-user-state-changelog"
        admin = KafkaAdminClient(bootstrap_servers=servers.bootstrap_servers)
        try:
            admin.create_topics([NewTopic(changelog, PARTITIONS, 1)])
        finally:
            admin.close()
        started = time.monotonic()
        placed, due, unbought = copies(templates, users, PARTITIONS, seed)
        bootstrap = servers.bootstrap_servers
        produce(bootstrap, changelog, [m for _, m in placed], [p for p, _ in placed])
        markers = [Message(end_marker_key(p), b"") for p in range(PARTITIONS)]
        produce(bootstrap, changelog, markers, list(range(PARTITIONS)))
        return watch(run, users, due, unbought, time.monotonic() - started)


def template_states(settings: Settings, seed: int) -> list[bytes]:
    """The users' states a worker makes of simulated traffic."""
    events = shop_events(TEMPLATE_EVENTS, seed, run_id=f"memory{seed}")
    messages = [
        RawMessage(orjson.dumps(e), e["user_id"].encode(), e["ts"], "clickstream", 0, offset)
        for offset, e in enumerate(events)
    ]
    table: dict[bytes, bytes] = {}
    replay(settings, messages, StageClock(), table)
    return [value for key, value in table.items() if is_user_key(key)]


def copies(
    templates: Sequence[bytes], users: int, partitions: int, seed: int
) -> tuple[list[tuple[int, Message]], int, int]:
    """``users`` copies of the template states, each with its key's partition; how many
    windows are due, and how many of those saw no purchase (each closes with a
    ``no_conversion`` outcome; a bought one closes with a label only). A copy applied no
    clickstream message (offset -1): the run's clickstream is empty, and the worker stops on
    states that applied messages of an empty log (``agents.clickstream.BrokerLostData``)."""
    rng = random.Random(seed)
    parsed = [orjson.loads(t) for t in templates]
    newest = max(fields[1][0] for fields in parsed)
    with_windows = [fields for fields in parsed if fields[4]]
    placed, due, unbought = [], 0, 0
    for i in range(users):
        key = b"m%015d" % i
        if rng.random() < DUE_SHARE and with_windows:
            fields = list(rng.choice(with_windows))
            fields[4] = [[*row[:2], newest - DUE_AGO_MS, *row[3:]] for row in fields[4]]
            due += len(fields[4])
            unbought += sum(not OpenDecision.from_compact(row).converted for row in fields[4])
        else:
            fields = list(rng.choice(parsed))
            fields[4] = []
        partition = partition_of(key, partitions)
        fields[5], fields[6] = partition, -1
        placed.append((partition, Message(key, orjson.dumps(fields))))
    return placed, due, unbought


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (the platform's producers).

    >>> [partition_of(b"m%015d" % i, 4) for i in range(6)]
    [3, 3, 1, 1, 2, 0]
    """
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def watch(run: Run, users: int, due: int, unbought: int, produced: float) -> Held:
    """Start the worker; poll it until the sweep has closed every due window."""
    worker = run.worker("million")
    started = time.monotonic()
    worker.start()
    assert worker.process is not None
    base = f"http://127.0.0.1:{worker.env['PROMO_WORKER_PORT']}"
    stall_before = stall_after = 0.0
    ready_at: float | None = None
    swept_at: float | None = None
    rss_ready = 0.0
    deadline = started + 600 + users / 1_000
    told = started
    while time.monotonic() < deadline and swept_at is None:
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited:\n{worker.tail()}")
        asked = time.monotonic()
        answered = _ask(f"{base}/health") is not None
        waited = time.monotonic() - asked if answered else 0.0
        if ready_at is None:
            stall_before = max(stall_before, waited)
            ready = _ask(f"{base}/ready")
            if ready is not None and ready[0] == 200:
                ready_at, rss_ready = time.monotonic(), worker.rss_mb()
        else:
            stall_after = max(stall_after, waited)
            closed = _closed(_ask(f"{base}/metrics"))
            if closed >= unbought:
                swept_at = time.monotonic()
            elif time.monotonic() - told >= PROGRESS_SECONDS:
                told = time.monotonic()
                print(
                    f"memory: {told - started:.0f} s, RSS {worker.rss_mb():,.0f} MB, "
                    f"{closed:,.0f} of {unbought:,} windows closed",
                    file=sys.stderr,
                )
        time.sleep(POLL_SECONDS)
    if ready_at is None:
        raise RuntimeError(f"the worker was not ready in time:\n{worker.tail()}")
    return Held(
        users,
        due,
        produced,
        ready_at - started,
        rss_ready,
        _peak_rss_mb(worker.process.pid),
        None if swept_at is None else swept_at - ready_at,
        stall_before,
        stall_after,
    )


def _ask(url: str) -> tuple[int, str] | None:
    """The status and body of the answer; None without one (no connection yet)."""
    try:
        with urllib.request.urlopen(url, timeout=300) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _closed(answer: tuple[int, str] | None) -> float:
    """Windows the worker closed without a purchase, from its Prometheus text."""
    for line in (answer or (0, ""))[1].splitlines():
        if line.startswith('promo_outcomes_total{type="no_conversion"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return process_rss_mb(pid)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    servers = Servers.from_environment()
    servers.check()
    held = measure(servers, Settings(), args.users, args.seed)
    print(json.dumps(held.to_json(), indent=2))


if __name__ == "__main__":
    main()

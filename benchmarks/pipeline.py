"""The full pipeline on the bench's backlog: real ``promo worker`` processes in their own
isolated run (app id, output topics, ClickHouse database) reading the shared backlog topic,
until every event and every decision is in ClickHouse.

Done is not judged from end offsets (Tansu understates them when a batch held several
records, as the backlog's do): the workers' group must have committed the offsets the
backlog read ended at, the decisions topic is then complete (a batch's outputs are
acknowledged before its offsets are committed) and is counted record by record, and
ClickHouse must hold that many decisions and every event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from agents.state_store import is_user_key
from benchmarks.ceilings import READY_TIMEOUT, Backlog
from benchmarks.figures import RunRates, events_per_second, latest_value_sizes, us_per_event
from benchmarks.server_cpu import CpuSpan, per_event
from chaos.harness import poll
from chaos.servers import Run, Servers, isolated_run, read_records

METHOD = (
    "{workers} promo worker process(es) in one group, own app id, output topics and ClickHouse "
    "database, reading the backlog from the start; clock from the first worker's "
    "'[^Worker]: Ready' until the group has committed the whole backlog (hot path) and "
    "ClickHouse holds every event and as many decisions as the decisions topic (counted "
    "record by record); CPU time of the worker processes (/proc) over the same span, their "
    "sinks and learner included, and of the local broker and ClickHouse (shared servers)"
)
SINKS_APART = (
    "; the workers with PROMO_SINKS_IN_WORKER=false and one `promo sinks` process writing "
    "ClickHouse (its CPU apart, not in cpu_us_per_event)"
)
PROMO_SINKS = ("-m", "promo.cli", "sinks")


@dataclass(frozen=True)
class PipelineFigures(RunRates):
    workers: int
    events: int
    startup_seconds: float
    hot_path_seconds: float
    seconds: float
    cpu_seconds: float
    rss_mb: tuple[float, ...]
    counts: dict[str, int]
    server_cpu_seconds: dict[str, float | None]
    #: users' states written to the changelog (read afterwards; None if not read)
    state_writes: int | None = None
    #: CPU of a ``promo sinks`` process beside workers that only decide (None: in-worker sinks)
    sinks_cpu_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": METHOD.format(workers=self.workers)
            + (SINKS_APART if self.sinks_cpu_seconds is not None else ""),
            "workers": self.workers,
            "events": self.events,
            "events_per_s": self.events_per_s,
            "hot_path_events_per_s": events_per_second(self.events, self.hot_path_seconds),
            "cpu_us_per_event": self.cpu_us_per_event,
            **per_event(self.server_cpu_seconds, self.events),
            "seconds": round(self.seconds, 1),
            "hot_path_seconds": round(self.hot_path_seconds, 1),
            "startup_seconds": round(self.startup_seconds, 1),
            "worker_rss_mb": [round(mb, 1) for mb in self.rss_mb],
            "sinks_process_cpu_us_per_event": None
            if self.sinks_cpu_seconds is None
            else us_per_event(self.sinks_cpu_seconds, self.events),
            "state_writes_per_event": writes_per_event(self.state_writes, self.events),
            **self.counts,
        }


def writes_per_event(writes: int | None, events: int) -> float | None:
    """State writes per event, to a thousandth (None when not counted)."""
    return None if writes is None else round(writes / events, 3)


@contextmanager
def pipeline_run(
    servers: Servers, backlog: Backlog, label: str, overrides: dict[str, str] | None = None
) -> Iterator[Run]:
    """An isolated run whose workers read the backlog's topic, with settings ``overrides``
    on the local profile."""
    pinned = {"PROMO_TOPIC_CLICKSTREAM": backlog.topic, **(overrides or {})}
    with isolated_run(servers, label, pinned) as run:
        yield run


class GroupOffsets:
    """Offsets a consumer group has committed (one connection, asked again and again)."""

    def __init__(self, bootstrap_servers: list[str], group: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
        )

    def committed(self, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        return {p: self.consumer.committed(TopicPartition(topic, p)) or 0 for p in partitions}

    def close(self) -> None:
        self.consumer.close()


def caught_up(committed: dict[int, int], ends: dict[int, int]) -> bool:
    """Every partition committed up to its end.

    >>> caught_up({0: 10, 1: 7}, {0: 10, 1: 8}), caught_up({0: 10, 1: 8}, {0: 10, 1: 8})
    (False, True)
    """
    return all(committed.get(p, 0) >= end for p, end in ends.items())


def drain(
    run: Run,
    backlog: Backlog,
    workers: int,
    server_pids: dict[str, int | None],
    timeout: float,
    sinks_apart: bool = False,
) -> PipelineFigures:
    """Start ``workers`` workers on the backlog and measure them until it is all in
    ClickHouse; the workers keep running (the run stops them). ``sinks_apart``: the workers
    only decide (``PROMO_SINKS_IN_WORKER=false``) and one ``promo sinks`` process writes.

    ClickHouse's counts are sampled all along, so that the time of done is the first sample
    that met it, not the moment this process had finished counting the decisions topic.
    """
    started = time.monotonic()
    procs = [run.worker(f"worker-{i + 1}") for i in range(workers)]
    sinks = run.worker("sinks") if sinks_apart else None
    if sinks is not None:
        sinks.args = PROMO_SINKS
        for p in (*procs, sinks):
            p.env["PROMO_SINKS_IN_WORKER"] = "false"
        sinks.start()
    for worker in procs:
        worker.start()
    ready_at, cpu_at_ready = [], []
    for worker in procs:
        worker.wait_ready(READY_TIMEOUT)
        ready_at.append(time.monotonic())
        cpu_at_ready.append(worker.cpu_seconds())
    ready, servers_cpu = min(ready_at), CpuSpan(server_pids)
    sinks_cpu_at_ready = 0.0 if sinks is None else sinks.cpu_seconds()
    samples: list[Sample] = []

    def sample() -> Sample:
        [(events, decisions)] = run.query(
            "SELECT (SELECT count() FROM events), (SELECT count() FROM decisions)"
        )
        samples.append((time.monotonic(), int(events), int(decisions)))
        return samples[-1]

    bootstrap = run.servers.bootstrap_servers
    offsets = GroupOffsets(bootstrap, run.names.app_id)

    def committed() -> dict[int, int]:
        sample()
        return offsets.committed(backlog.topic, backlog.ends)

    try:
        poll(
            committed,
            lambda done: caught_up(done, backlog.ends),
            timeout=timeout,
            what="the workers' group through the backlog",
            context=run.logs,
        )
    finally:
        offsets.close()
    hot_path = time.monotonic() - ready
    decisions = {
        orjson.loads(r.value)["decision_id"]
        for r in read_records(bootstrap, run.topic("decisions"), idle_seconds=1.0)
        if r.value
    }
    poll(
        sample,
        lambda s: s[1] >= backlog.events and s[2] >= len(decisions),
        timeout=timeout,
        what=f"{backlog.events} events and {len(decisions)} decisions in ClickHouse",
        context=run.logs,
    )
    cpu = sum(w.cpu_seconds() - at_ready for w, at_ready in zip(procs, cpu_at_ready, strict=True))
    sinks_cpu = None if sinks is None else sinks.cpu_seconds() - sinks_cpu_at_ready
    server_cpu = servers_cpu.seconds()
    return PipelineFigures(
        workers=workers,
        events=backlog.events,
        startup_seconds=ready - started,
        hot_path_seconds=hot_path,
        seconds=max(hot_path, first_reaching(samples, backlog.events, len(decisions)) - ready),
        cpu_seconds=cpu,
        rss_mb=tuple(w.rss_mb() for w in procs),
        counts={"decisions_on_topic": len(decisions), **stored_counts(run)},
        server_cpu_seconds=server_cpu,
        sinks_cpu_seconds=sinks_cpu,
    )


#: (monotonic time, events in ClickHouse, decisions in ClickHouse)
Sample = tuple[float, int, int]


def first_reaching(samples: Iterable[Sample], events: int, decisions: int) -> float:
    """Time of the first sample with at least ``events`` events and ``decisions`` decisions.

    >>> first_reaching([(1.0, 5, 0), (1.5, 10, 2), (2.0, 10, 3), (2.5, 10, 3)], 10, 3)
    2.0
    """
    return next(t for t, e, d in samples if e >= events and d >= decisions)


def stored_counts(run: Run) -> dict[str, int]:
    """What ClickHouse holds once each record is counted once (FINAL)."""
    [(events, decisions, offers)] = run.query(
        "SELECT (SELECT count() FROM events FINAL), (SELECT count() FROM decisions FINAL), "
        "(SELECT count() FROM decisions FINAL WHERE chosen_offer != 'none')"
    )
    return {
        "events_stored": int(events),
        "decisions_stored": int(decisions),
        "offers": int(offers),
        "suppressions": run.count("suppressions"),
        "outcomes": run.count("outcomes"),
        "dead_letters": run.count("dead_letters"),
    }


@dataclass(frozen=True)
class Changelog:
    """The user-state changelog records a run's workers wrote (from ``start`` on)."""

    records: list[ConsumerRecord]

    @classmethod
    def read(cls, run: Run, start: dict[int, int] | None = None) -> Changelog:
        topic = f"{run.names.app_id}-user-state-changelog"
        bootstrap = run.servers.bootstrap_servers
        return cls(read_records(bootstrap, topic, idle_seconds=2.0, start=start))

    @property
    def ends(self) -> dict[int, int]:
        """Per partition, the offset after the last record read: where to read on from."""
        ends: dict[int, int] = {}
        for r in self.records:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        return ends

    def state_writes(self) -> int:
        """Users' states written (budget ledgers left out)."""
        return sum(1 for r in self.records if r.key is not None and is_user_key(r.key))

    def state_sizes(self) -> list[int]:
        """Bytes of each user's latest state: what the worker's memory store holds."""
        sizes = latest_value_sizes((r.key, r.value) for r in self.records)
        return [size for key, size in sizes.items() if is_user_key(key)]

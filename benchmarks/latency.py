"""Event -> decision and event -> offer latency at a steady rate, on a warm worker.

Fresh simulated users (another seed of the shop, one simulated day squeezed into the phase)
are sent at a paced rate to the clickstream a worker has already drained, each event with
``ts`` and Kafka timestamp both the time of sending. A decision's latency is its Kafka
timestamp on the decisions topic minus its triggering event's send time (joined on
``trigger_event_id``); an offer's, likewise through its ``decision_id``. The outputs' Kafka
timestamps are the worker producer's clock when it handed them to its client: the same
machine's clock as the sender's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from benchmarks.ceilings import Backlog
from benchmarks.figures import latency_summary, median_by_window, output_latencies
from benchmarks.pipeline import GroupOffsets, writes_per_event
from benchmarks.server_cpu import CpuSpan
from chaos.backlog import shop_events
from chaos.harness import Clickstream, WorkerProcess, poll
from chaos.servers import Run, read_records

METHOD = (
    "fresh simulated users (the shop with another seed, one simulated day) sent at a paced "
    "rate, {share} of the one-worker pipeline's throughput, to the clickstream of that worker "
    "once it had drained the backlog (warm state and models); each event's ts and Kafka "
    "timestamp = its send time. Latency = the output's Kafka timestamp (decisions topic; "
    "offers topic, joined through decision_id) minus its triggering event's send time; "
    "events sent in the warm-up are left out. The p50 per 10 s of sending and the drain "
    "after the last send (judged from committed offsets: Faust commits every 2.8 s) show "
    "whether the worker kept up; the CPU shares are over the sending; state writes are the "
    "user-state changelog records written in the phase"
)


@dataclass(frozen=True)
class LatencyFigures:
    #: of the one-worker pipeline's throughput
    share: float
    rate: float
    seconds: float
    warmup_seconds: float
    events_sent: int
    #: (send time, latency) in ms of each decision / offer of an event sent after the warm-up
    to_decision: list[tuple[int, int]]
    to_offer: list[tuple[int, int]]
    #: from the last send until the worker's group had committed every event sent
    drain_seconds: float
    worker_cpu_seconds: float
    server_cpu_seconds: dict[str, float | None]
    #: this process's CPU while it sent (the sender shares the cores too)
    sender_cpu_seconds: float
    #: users' states written to the changelog during the phase (None if not counted)
    state_writes: int | None = None

    def to_json(self) -> dict[str, Any]:
        start = min((sent for sent, _ in self.to_decision), default=0)
        return {
            "method": METHOD.format(share="half" if self.share == 0.5 else f"{self.share:g}"),
            "rate_events_per_s": round(self.rate),
            "share_of_pipeline_rate": self.share,
            "seconds": round(self.seconds, 1),
            "warmup_seconds": self.warmup_seconds,
            "events_sent": self.events_sent,
            "event_to_decision": latency_summary([ms for _, ms in self.to_decision]),
            "event_to_offer": latency_summary([ms for _, ms in self.to_offer]),
            "event_to_decision_p50_ms_per_10_s": median_by_window(self.to_decision, start, 10_000),
            "drain_seconds_after_last_send": round(self.drain_seconds, 1),
            "state_writes_per_event": writes_per_event(self.state_writes, self.events_sent),
            "worker_cpu_share_of_a_core": round(self.worker_cpu_seconds / self.seconds, 2),
            "sender_cpu_share_of_a_core": round(self.sender_cpu_seconds / self.seconds, 2),
            **{
                f"{name}_cpu_share_of_a_core": None if s is None else round(s / self.seconds, 2)
                for name, s in self.server_cpu_seconds.items()
            },
        }


def paced_latency(
    run: Run,
    backlog: Backlog,
    worker: WorkerProcess,
    server_pids: dict[str, int | None],
    *,
    share: float,
    rate: float,
    seconds: float,
    warmup_seconds: float,
    seed: int,
    committed_before: int,
    timeout: float = 300.0,
) -> LatencyFigures:
    """A paced phase on ``worker``, whose group had committed ``committed_before``
    clickstream messages before it."""
    events = shop_events(round(rate * seconds), seed, run_id=f"latency{seed}", days=1.0)
    bootstrap = run.servers.bootstrap_servers
    cpu_before, servers_cpu = worker.cpu_seconds(), CpuSpan(server_pids)
    sender_cpu = time.process_time()
    sent, elapsed = send_paced(Clickstream(bootstrap, backlog.topic), events, rate)
    sender_cpu = time.process_time() - sender_cpu
    worker_cpu, server_cpu = worker.cpu_seconds() - cpu_before, servers_cpu.seconds()
    last_sent = time.monotonic()
    offsets = GroupOffsets(bootstrap, run.names.app_id)
    total = committed_before + len(events)
    try:
        poll(
            lambda: sum(offsets.committed(backlog.topic, backlog.ends).values()),
            lambda committed: committed >= total,
            timeout=timeout,
            interval=0.2,
            what=f"the worker through {len(events)} paced events",
            context=run.logs,
        )
    finally:
        offsets.close()
    drained = time.monotonic() - last_sent
    since = min(sent.values()) + round(warmup_seconds * 1000)
    triggers: dict[str, str] = {}
    decided = []
    for r in read_records(bootstrap, run.topic("decisions"), idle_seconds=1.0):
        decision = orjson.loads(r.value)
        triggers[decision["decision_id"]] = decision["trigger_event_id"]
        decided.append((decision["trigger_event_id"], r.timestamp))
    offered = []
    for r in read_records(bootstrap, run.topic("offers"), idle_seconds=1.0):
        trigger = triggers.get(orjson.loads(r.value)["decision_id"])
        if trigger is not None:
            offered.append((trigger, r.timestamp))
    return LatencyFigures(
        share=share,
        rate=rate,
        seconds=elapsed,
        warmup_seconds=warmup_seconds,
        events_sent=len(events),
        to_decision=output_latencies(sent, decided, since),
        to_offer=output_latencies(sent, offered, since),
        drain_seconds=drained,
        worker_cpu_seconds=worker_cpu,
        server_cpu_seconds=server_cpu,
        sender_cpu_seconds=sender_cpu,
    )


def send_paced(
    clickstream: Clickstream, events: list[dict[str, Any]], rate: float
) -> tuple[dict[str, int], float]:
    """Send ``events`` at ``rate`` per second, each stamped (``ts`` and Kafka timestamp) with
    its send time; returns event id -> send time (epoch ms) and the seconds it took."""
    sent: dict[str, int] = {}
    start = time.monotonic()
    try:
        for i, event in enumerate(events):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now_ms = int(time.time() * 1000)
            clickstream.send({**event, "ts": now_ms}, timestamp_ms=now_ms)
            sent[event["event_id"]] = now_ms
        clickstream.flush()
    finally:
        clickstream.close()
    return sent, time.monotonic() - start

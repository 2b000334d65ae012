"""Scenario 5: the broker frozen, then restarted empty.

A third of a backlog is stored, then:

1. **Frozen** (``servers.sh broker-pause``, SIGSTOP) for ``pause_seconds``: unreachable, its
   data kept, like a network partition or a long GC pause of a real Kafka. The worker must
   neither exit nor spin, and once the broker thaws it goes on: the second third is stored,
   every event once.
2. **Restarted** (``broker-down``, then ``up``): the local Tansu keeps topics in memory, so it
   comes back empty, as a Kafka that lost its disks would. The worker's state then no longer
   matches the log: it must fail loudly (exit code, a message saying the broker lost data)
   rather than hang, spin, or skip new messages as replays of ones it applied.
3. **Started again**, a new worker begins from the empty broker and the last third is stored.

It stops the local broker: the CI-sized
test runs after every other test, and only on servers this checkout started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from chaos.backlog import as_messages, produce, shop_events
from chaos.crashes import READY_TIMEOUT, wait_finished
from chaos.harness import WorkerProcess
from chaos.outcome import Check, ScenarioResult
from chaos.servers import Servers, isolated_run, servers_sh

#: A worker waiting for a broker uses less CPU than this share of one core.
MAX_IDLE_CPU = 0.25
#: How long a worker may take to notice the broker came back empty and stop.
FAIL_WITHIN_SECONDS = 120.0
LOST_DATA_MESSAGE = "the broker lost data"


@dataclass(frozen=True)
class BrokerRestartConfig:
    events: int = 9_000
    pause_seconds: float = 30.0
    seed: int = 41
    keep: bool = False


def run(servers: Servers, config: BrokerRestartConfig) -> ScenarioResult:
    result = ScenarioResult("broker_restart")
    started = time.monotonic()
    events = shop_events(config.events, config.seed, run_id=f"b{config.seed}")
    third = len(events) // 3
    with isolated_run(servers, "broker", {}, keep=config.keep) as run:
        run.create_topics("clickstream")
        topic = run.topic("clickstream")
        worker = run.worker("main").start()
        worker.wait_ready(READY_TIMEOUT)
        produce(servers.bootstrap_servers, topic, as_messages(events[:third]))
        wait_finished(run, third)

        cpu_before = cpu_seconds(worker)
        servers_sh("broker-pause")
        try:
            time.sleep(config.pause_seconds)
        finally:
            servers_sh("broker-resume")
        paused_cpu = (cpu_seconds(worker) - cpu_before) / config.pause_seconds
        alive_after_pause = worker.process is not None and worker.process.poll() is None
        produce(servers.bootstrap_servers, topic, as_messages(events[third : 2 * third]))
        wait_finished(run, 2 * third)
        after_pause = run.count("events")

        servers_sh("broker-down")
        servers_sh("up")  # Tansu again, with nothing in it
        back = time.monotonic()
        code, cpu_waiting = _wait_exit(worker, FAIL_WITHIN_SECONDS)
        failed_after = time.monotonic() - back
        said = LOST_DATA_MESSAGE in worker.log()

        run.create_topics("clickstream")
        restarted = run.worker("after").start()
        restarted.wait_ready(READY_TIMEOUT)
        produce(servers.bootstrap_servers, topic, as_messages(events[2 * third :]))
        wait_finished(run, len(events))

        result.injected = {
            "events": len(events),
            "broker_frozen_seconds": config.pause_seconds,
            "broker_restarted": "empty (in-memory storage), after two thirds of the events",
        }
        result.measured = {
            "worker_cpu_share_while_frozen": round(paused_cpu, 3),
            "events_stored_after_the_freeze": after_pause,
            "exit_code_after_restart": code,
            "seconds_to_exit_after_restart": round(failed_after, 1),
            "worker_cpu_share_until_exit": round(cpu_waiting, 3),
            "events_stored_at_end": run.count("events"),
        }
        result.checks = [
            Check.equal("the worker survives a frozen broker", True, alive_after_pause),
            Check.equal(
                f"it waits for a frozen broker using under {MAX_IDLE_CPU:.0%} of a core",
                True,
                paused_cpu < MAX_IDLE_CPU,
            ),
            Check.equal("every event stored once after the freeze", 2 * third, after_pause),
            Check.equal(
                "a broker back empty stops the worker with an error",
                True,
                code is not None and code != 0,
            ),
            Check.equal(f"its log says {LOST_DATA_MESSAGE!r}", True, said),
            Check.equal(
                f"it used under {MAX_IDLE_CPU:.0%} of a core until it stopped",
                True,
                cpu_waiting < MAX_IDLE_CPU,
            ),
            Check.equal("a new worker stores the rest", len(events), run.count("events")),
        ]
    result.seconds = time.monotonic() - started
    return result


def _wait_exit(worker: WorkerProcess, timeout: float) -> tuple[int | None, float]:
    """The worker's exit code (None if it still runs after ``timeout``), and the share of a
    core it used meanwhile; a worker still running is killed."""
    assert worker.process is not None
    started, base = time.monotonic(), cpu_seconds(worker)
    cpu = 0.0
    while time.monotonic() - started < timeout:
        now = cpu_seconds(worker) - base
        if worker.process.poll() is not None:
            break
        cpu = now
        time.sleep(1.0)
    else:
        worker.kill()
        return None, cpu / timeout
    return worker.process.returncode, cpu / max(time.monotonic() - started, 1.0)


def cpu_seconds(worker: WorkerProcess) -> float:
    """User + system CPU time of the worker process so far (0 once it is gone)."""
    if worker.process is None:
        return 0.0
    try:
        fields = Path(f"/proc/{worker.process.pid}/stat").read_text("ascii").rsplit(")", 1)[1]
    except OSError:
        return 0.0
    utime, stime = fields.split()[11:13]
    return (int(utime) + int(stime)) / 100

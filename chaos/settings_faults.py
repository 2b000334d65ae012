"""Scenario 3: bad settings. Each starts a real ``promo worker`` with one thing wrong and
checks its exit code, that it says what is wrong in one line naming the setting (or, for a
schema behind, the command that fixes it), that it never hangs, and that the password it was
given never reaches its output. An unreachable ClickHouse is an outage, not a bad setting:
that worker must start and keep deciding."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from chaos.backlog import as_messages, produce
from chaos.harness import free_port, poll
from chaos.outcome import Check, ScenarioResult
from chaos.servers import Run, Servers, isolated_run, read_all

#: A password no server knows: it must never appear in any output.
SECRET = "chaos-secret-pw-7731"
#: Longer than the worker's own bootstrap timeout (~30 s for an unreachable broker).
EXIT_TIMEOUT = 75.0
PROBLEM_LINE = re.compile(r"^promo: .*", re.MULTILINE)


@dataclass(frozen=True)
class Fault:
    name: str
    #: Changes to the run's environment; ``{host}`` is ClickHouse's host:port.
    env: dict[str, str]
    #: What the one-line message must contain.
    names: str
    exit_code: int
    prepare: Callable[[Run], None] | None = None


def _schema_behind(run: Run) -> None:
    run.ch.execute("ALTER TABLE schema_migrations DELETE WHERE version = 5")
    poll(
        lambda: run.count("schema_migrations", "version = 5"),
        lambda n: n == 0,
        what="the mutation",
    )


def _database_missing(run: Run) -> None:
    run.ch.execute(f"DROP DATABASE {run.names.database}")


FAULTS = [
    Fault("invalid value", {"PROMO_CONTROL_SHARE": "2"}, "PROMO_CONTROL_SHARE", 2),
    Fault("invalid number", {"PROMO_BATCH_SIZE": "lots"}, "PROMO_BATCH_SIZE", 2),
    Fault(
        "unreachable broker",
        {"PROMO_BROKER_URL": "kafka://127.0.0.1:{free}"},
        "PROMO_BROKER_URL",
        1,
    ),
    Fault(
        "wrong ClickHouse password",
        {"PROMO_CLICKHOUSE_PASSWORD": SECRET},
        "PROMO_CLICKHOUSE_PASSWORD",
        2,
    ),
    Fault(
        "unknown ClickHouse user",
        {
            "PROMO_CLICKHOUSE_URL": "clickhouse://nobody@{host}/{db}",
            "PROMO_CLICKHOUSE_PASSWORD": SECRET,
        },
        "PROMO_CLICKHOUSE_URL",
        2,
    ),
    Fault("schema behind", {}, "promo migrate", 2, prepare=_schema_behind),
    # The worker creates a missing database when its user may (a writer may not: it is then
    # refused, named), and finds no schema in it.
    Fault("missing database", {}, "promo migrate", 2, prepare=_database_missing),
]


def run(servers: Servers) -> ScenarioResult:
    result = ScenarioResult("bad_settings")
    started = time.monotonic()
    outcomes = {}
    for fault in FAULTS:
        with isolated_run(servers, "settings", {}) as target:
            outcome, checks = _stopping(target, fault)
            outcomes[fault.name] = outcome
            result.checks += checks
    with isolated_run(servers, "outage", {}) as target:
        outcome, checks = _outage(target)
        outcomes["unreachable ClickHouse"] = outcome
        result.checks += checks
    result.injected = {"faults": [f.name for f in FAULTS] + ["unreachable ClickHouse"]}
    result.measured = outcomes
    result.seconds = time.monotonic() - started
    return result


def _stopping(target: Run, fault: Fault) -> tuple[dict[str, object], list[Check]]:
    host = urlsplit(target.env["PROMO_CLICKHOUSE_URL"]).netloc.split("@")[-1]
    for key, value in fault.env.items():
        target.env[key] = value.format(host=host, free=free_port(), db=target.names.database)
    if fault.prepare is not None:
        fault.prepare(target)
    worker = target.worker(fault.name.replace(" ", "-")).start()
    assert worker.process is not None
    t0 = time.monotonic()
    try:
        code: int | None = worker.process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        code = None
        worker.kill()
    seconds = round(time.monotonic() - t0, 1)
    log = worker.log()
    lines = PROBLEM_LINE.findall(log)
    label = fault.name
    outcome: dict[str, object] = {"exit_code": code, "seconds": seconds, "message": lines}
    return outcome, [
        Check.equal(f"{label}: exits in time with code {fault.exit_code}", fault.exit_code, code),
        Check.equal(
            f"{label}: one line names {fault.names}",
            True,
            len(lines) == 1 and fault.names in lines[0],
            note=" | ".join(lines),
        ),
        Check.equal(f"{label}: no stack trace", 0, log.count("Traceback")),
        Check.equal(f"{label}: password never printed", 0, log.count(SECRET)),
    ]


def _outage(target: Run) -> tuple[dict[str, object], list[Check]]:
    """ClickHouse at a port where nothing listens: the worker starts and decides."""
    database = urlsplit(target.env["PROMO_CLICKHOUSE_URL"]).path
    target.env["PROMO_CLICKHOUSE_URL"] = f"clickhouse://default@127.0.0.1:{free_port()}{database}"
    target.env["PROMO_CLICKHOUSE_PASSWORD"] = SECRET
    target.env["PROMO_DECISION_TRIGGERS"] = "view,add_to_cart,cart_return"
    target.create_topics("clickstream")
    worker = target.worker("outage").start()
    t0 = time.monotonic()
    worker.wait_ready(EXIT_TIMEOUT)
    now = int(time.time() * 1000) - 3_600_000
    users = [f"outage-{n}" for n in range(50)]
    events = [
        {
            "event_id": f"{u}-v",
            "user_id": u,
            "ts": now,
            "type": "view",
            "item_id": "i1",
            "category": "shoes",
            "price": 40.0,
        }
        for u in users
    ]
    produce(target.servers.bootstrap_servers, target.topic("clickstream"), as_messages(events))
    deadline = time.monotonic() + 60
    decisions: list[object] = []
    while time.monotonic() < deadline and len(decisions) < len(users):
        decisions = list(
            read_all(
                target.servers.bootstrap_servers,
                target.topic("decisions"),
                idle_seconds=2.0,
                timeout=10.0,
            )
        )
    alive = worker.process is not None and worker.process.poll() is None
    log = worker.log()
    outcome: dict[str, object] = {
        "ready_seconds": round(time.monotonic() - t0, 1),
        "decisions_during_outage": len(decisions),
        "alive": alive,
    }
    worker.stop()
    return outcome, [
        Check.equal(
            "unreachable ClickHouse: worker starts, says it will retry",
            True,
            "starting anyway" in log,
        ),
        Check(
            "unreachable ClickHouse: keeps deciding (a decision per user)",
            len(decisions) >= len(users),
            len(users),
            len(decisions),
        ),
        Check.equal("unreachable ClickHouse: still running", True, alive),
        Check.equal("unreachable ClickHouse: password never printed", 0, log.count(SECRET)),
    ]

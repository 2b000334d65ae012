"""Scenario 1: crashes with learning on.

One fixed backlog, two runs over copies of it: a reference with one worker and no crash, and
a chaos run whose worker is SIGKILLed ``kills`` times at random moments (restarted each time)
while a second worker joins and later leaves. Both must store the same events, take the same
decisions with the same per-user features, and attribute the same purchases; every offer sent
more than once must carry the same content each time.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import orjson

from chaos.backlog import as_messages, copy_topic, produce, shop_events
from chaos.harness import WorkerProcess
from chaos.outcome import Check, ScenarioResult
from chaos.servers import Run, Servers, isolated_run, read_all
from streams.feature_vector import FEATURE_NAMES

#: Changes since the last look, in seconds, under which a run counts as finished.
QUIET_SECONDS = 15.0
READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class CrashConfig:
    events: int = 200_000
    kills: int = 5
    seed: int = 11
    keep: bool = False


@dataclass(frozen=True)
class RunFigures:
    events: int
    purchases: int
    order_total: float
    decisions: int
    purchase_outcomes: int
    revenue: float
    suppressions: int
    offer_records: int
    offer_ids: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run(servers: Servers, config: CrashConfig) -> ScenarioResult:
    result = ScenarioResult("crashes")
    rng = random.Random(config.seed)
    started = time.monotonic()
    with isolated_run(servers, "backlog", {}, keep=config.keep) as backlog:
        backlog.create_topics("clickstream")
        events = shop_events(config.events, config.seed, run_id=f"c{config.seed}")
        produce(servers.bootstrap_servers, backlog.topic("clickstream"), as_messages(events))
        result.injected = {
            "backlog_events": len(events),
            "users": len({e["user_id"] for e in events}),
            "kills": config.kills,
            "second_worker": "joins after kill 2, leaves (SIGTERM) after kill 4",
        }
        with (
            isolated_run(servers, "ref", {}, keep=config.keep) as reference,
            isolated_run(servers, "chaos", {}, keep=config.keep) as chaos,
        ):
            for target in (reference, chaos):
                target.create_topics("clickstream")
                copy_topic(
                    servers.bootstrap_servers,
                    backlog.topic("clickstream"),
                    target.topic("clickstream"),
                    len(events),
                )
            t0 = time.monotonic()
            reference.worker("ref").start().wait_ready(READY_TIMEOUT)
            wait_finished(reference, len(events))
            ref_seconds = time.monotonic() - t0
            for worker in reference.workers:
                worker.stop()  # two cores: the chaos run gets them to itself
            t0 = time.monotonic()
            kills = crash_run(chaos, len(events), config.kills, rng)
            wait_finished(chaos, len(events))
            chaos_seconds = time.monotonic() - t0
            ref, cha = figures(reference), figures(chaos)
            result.measured = {
                "reference": {**ref.to_json(), "seconds": round(ref_seconds, 1)},
                "chaos": {**cha.to_json(), "seconds": round(chaos_seconds, 1)},
                "kills_at_progress": kills,
                "tracebacks_in_logs": sum(w.log().count("Traceback") for w in chaos.workers),
            }
            result.checks = compare(reference, chaos, ref, cha, len(events))
    result.seconds = time.monotonic() - started
    return result


def progress(run: Run, expected: int) -> float:
    return run.count("events", final=False) / expected


def crash_run(run: Run, expected: int, kills: int, rng: random.Random) -> list[float]:
    """The chaos: SIGKILL the main worker at random points of the backlog, restart it each
    time; a second worker joins after the second kill and leaves after the fourth."""
    main = run.worker("main-1").start()
    main.wait_ready(READY_TIMEOUT)
    second: WorkerProcess | None = None
    points = sorted(rng.uniform(0.05, 0.9) for _ in range(kills))
    at: list[float] = []
    for i, point in enumerate(points):
        deadline = time.monotonic() + max(30.0, expected / 1000)
        while progress(run, expected) < point and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(rng.uniform(0.0, 2.0))  # a random moment, not a progress boundary
        at.append(round(progress(run, expected), 3))
        main.kill()
        main = run.worker(f"main-{i + 2}").start()
        main.wait_ready(READY_TIMEOUT)
        if i == 1:
            second = run.worker("second").start()
            second.wait_ready(READY_TIMEOUT)
        if i == 3 and second is not None:
            second.stop(grace=30.0)
    return at


def wait_finished(run: Run, expected: int, timeout: float | None = None) -> None:
    """Until every event is stored, the hot path has committed the whole backlog, the sinks
    every message of their topics, and no table has changed for ``QUIET_SECONDS``. (Quiet
    alone is not enough: a worker restarting or a group rebalancing on Tansu can be silent
    for longer than that.)"""
    limit = timeout if timeout is not None else 120.0 + expected / 300
    deadline = time.monotonic() + limit
    while run.count("events") < expected:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{run.count('events')} of {expected} events stored after {limit:.0f} s\n"
                + run.logs()
            )
        time.sleep(1.0)
    while run.clickstream_lag() > 0:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the workers left {run.clickstream_lag()} clickstream messages uncommitted "
                f"after {limit:.0f} s\n" + run.logs()
            )
        time.sleep(1.0)
    # The sinks are their own group: a partition they stop consuming (their watchdog resumes
    # it after a minute) would otherwise pass for rows the chaos run lost. Waited for, not
    # required: a batch written whose commit a rebalance refused stays uncommitted until the
    # next owner reads it again, its rows already stored; the row checks judge.
    while run.sinks_lag() > 0 and time.monotonic() < deadline:
        time.sleep(1.0)
    last: tuple[int, ...] = ()
    still_since = time.monotonic()
    while time.monotonic() - still_since < QUIET_SECONDS and time.monotonic() < deadline:
        now = tuple(run.count(t, final=False) for t in ("decisions", "outcomes", "suppressions"))
        if now != last:
            last, still_since = now, time.monotonic()
        time.sleep(1.0)


def figures(run: Run) -> RunFigures:
    [(events, purchases, order_total)] = run.query(
        "SELECT count(), countIf(type = 'purchase'), sumIf(assumeNotNull(order_total), "
        "type = 'purchase') FROM events FINAL"
    )
    [(outcomes, revenue)] = run.query(
        "SELECT count(), sum(order_total) FROM outcomes FINAL WHERE type = 'purchase'"
    )
    offers = offer_copies(run)
    return RunFigures(
        events=int(events),
        purchases=int(purchases),
        order_total=round(float(order_total), 2),
        decisions=run.count("decisions"),
        purchase_outcomes=int(outcomes),
        revenue=round(float(revenue), 2),
        suppressions=run.count("suppressions"),
        offer_records=sum(len(copies) for copies in offers.values()),
        offer_ids=len(offers),
    )


def offer_copies(run: Run) -> dict[str, list[dict[str, Any]]]:
    copies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, _, value in read_all(run.servers.bootstrap_servers, run.topic("offers")):
        offer = orjson.loads(value or b"{}")
        copies[str(offer.get("offer_id"))].append(offer)
    return copies


def decisions_by_point(run: Run) -> dict[tuple[str, str], tuple[list[float], str]]:
    rows = run.query(
        "SELECT user_id, trigger_event_id, features, chosen_offer FROM decisions FINAL"
    )
    return {(u, t): (list(f), c) for u, t, f, c in rows}


def compare(
    reference: Run, chaos: Run, ref: RunFigures, cha: RunFigures, expected_events: int
) -> list[Check]:
    checks = [
        Check.equal("events stored = backlog (reference)", expected_events, ref.events),
        Check.equal("events count equal", ref.events, cha.events),
        Check.equal("purchase events equal", ref.purchases, cha.purchases),
        Check.equal("sum of order totals equal", ref.order_total, cha.order_total),
        Check.equal("decisions count equal", ref.decisions, cha.decisions),
        Check.equal("purchase outcomes count equal", ref.purchase_outcomes, cha.purchase_outcomes),
        Check.equal("purchase outcomes revenue equal", ref.revenue, cha.revenue),
    ]
    ref_points, chaos_points = decisions_by_point(reference), decisions_by_point(chaos)
    only = [
        {"user_id": u, "trigger_event_id": t, "only_in": "reference"}
        for u, t in ref_points.keys() - chaos_points.keys()
    ] + [
        {"user_id": u, "trigger_event_id": t, "only_in": "chaos"}
        for u, t in chaos_points.keys() - ref_points.keys()
    ]
    checks.append(Check.none_of("same decision points (user, trigger event)", only))
    differing = []
    for point in sorted(ref_points.keys() & chaos_points.keys()):
        a, b = ref_points[point][0], chaos_points[point][0]
        if a != b:
            differing.append(
                {
                    "user_id": point[0],
                    "trigger_event_id": point[1],
                    "features": {
                        name: [x, y]
                        for name, x, y in zip(FEATURE_NAMES, a, b, strict=False)
                        if x != y
                    },
                }
            )
    shared = len(ref_points.keys() & chaos_points.keys())
    checks.append(
        Check.none_of(
            "features equal where both runs decided",
            differing,
            note=f"{shared} decision points in both runs",
        )
    )
    for label, run in (("chaos", chaos), ("reference", reference)):
        conflicting = []
        for offer_id, copies in offer_copies(run).items():
            distinct = {orjson.dumps(c, option=orjson.OPT_SORT_KEYS) for c in copies}
            if len(distinct) > 1:
                fields = sorted(
                    {k for c in copies for k in c if any(c.get(k) != d.get(k) for d in copies)}
                )
                conflicting.append(
                    {
                        "offer_id": offer_id,
                        "copies": len(copies),
                        "differing_fields": {f: [c.get(f) for c in copies] for f in fields},
                    }
                )
        checks.append(Check.none_of(f"resent offers identical ({label})", conflicting))
    return checks

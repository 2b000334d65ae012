"""Scenario 2: a flood of bad input mixed with good events.

Every kind of ``simulator.malformed`` (dead-letter kinds, odd-but-valid events for the run's
flood users, resends) is sent between the events of a simulated shop; a second run gets the
good events alone. The flooded worker must not crash, every bad message must be a dead letter
with its expected reason, a stored event, or a resend stored once
(``in = events stored + dead letters + duplicates``), and the real users' decisions and
outcomes must equal the run without the flood.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from chaos.backlog import as_messages, produce, shop_events
from chaos.crashes import READY_TIMEOUT, wait_finished
from chaos.outcome import Check, ScenarioResult
from chaos.servers import Run, Servers, isolated_run
from schemas.dead_letters import RejectReason
from simulator.malformed import (
    EXPECTED_OUTCOME,
    HUGE_SIZES,
    Accepted,
    MalformedInjector,
    MalformedKind,
    Message,
)

#: At most this many of each multi-megabyte kind (Tansu keeps every message in memory).
HUGE_PER_KIND = {MalformedKind.HUGE_1MB: 4, MalformedKind.HUGE_4MB: 2, MalformedKind.HUGE_8MB: 1}
#: A worker crash leaves one of these in its log (Faust's and mode's crash reports).
CRASH_MARKS = re.compile(r"Traceback|Crashed reason|crashed|\[\^Worker\]: Stopping")


@dataclass(frozen=True)
class FloodConfig:
    bad: int = 100_000
    good: int = 30_000
    seed: int = 23
    keep: bool = False


@dataclass
class Flood:
    messages: list[Message]
    kinds: Counter[MalformedKind]

    def expected(self) -> tuple[Counter[str], int, int]:
        """(dead letters by reason, stored events among the bad, duplicates)."""
        reasons: Counter[str] = Counter()
        stored = duplicates = 0
        for kind, n in self.kinds.items():
            outcome = EXPECTED_OUTCOME[kind]
            if isinstance(outcome, RejectReason):
                reasons[outcome.value] += n
            elif outcome is Accepted.STORED:
                stored += n
            else:
                duplicates += n
        return reasons, stored, duplicates


def make_flood(good: list[dict[str, Any]], bad: int, seed: int, run_id: str) -> Flood:
    """``bad`` malformed messages spread at random between the good events (each after the
    event it is modelled on), every kind about equally often, the huge ones capped."""
    rng = random.Random(seed)
    injector = MalformedInjector(1.0, run_id, seed, now_ms=int(time.time() * 1000))
    # Round-robin, so that even a small flood has one of each size.
    huge = [
        kind
        for round_ in range(max(HUGE_PER_KIND.values()))
        for kind, n in HUGE_PER_KIND.items()
        if round_ < n
    ]
    regular = [k for k in MalformedKind if k not in HUGE_SIZES]
    kinds = huge[: max(len(HUGE_PER_KIND), bad // 10_000)] if bad >= 100 else []
    kinds += [regular[i % len(regular)] for i in range(bad - len(kinds))]
    rng.shuffle(kinds)
    slots = sorted(rng.randrange(len(good)) for _ in kinds)
    messages: list[Message] = []
    k = 0
    for i, event in enumerate(good):
        messages.extend(as_messages([event]))
        while k < len(slots) and slots[k] == i:
            messages.append(injector.malformed(kinds[k], event))
            k += 1
    return Flood(messages, Counter(kinds))


def run(servers: Servers, config: FloodConfig) -> ScenarioResult:
    result = ScenarioResult("bad_input_flood")
    started = time.monotonic()
    good = shop_events(config.good, config.seed, run_id=f"f{config.seed}", days=3.0)
    flood = make_flood(good, config.bad, config.seed, run_id=f"f{config.seed}")
    reasons, stored_bad, duplicates = flood.expected()
    largest = max(len(m.value or b"") for m in flood.messages)
    result.injected = {
        "good_events": len(good),
        "bad_messages": sum(flood.kinds.values()),
        "kinds": len(flood.kinds),
        "by_kind": {k.value: n for k, n in sorted(flood.kinds.items())},
        "largest_message_bytes": largest,
        "largest_note": "Tansu accepted 32 MiB messages when probed (no broker limit met); "
        "the flood caps itself at 8 MiB to spare the broker's memory",
    }
    with (
        isolated_run(servers, "flood", {}, keep=config.keep) as flooded,
        isolated_run(servers, "clean", {}, keep=config.keep) as clean,
    ):
        for target, messages in ((flooded, flood.messages), (clean, as_messages(good))):
            target.create_topics("clickstream")
            produce(servers.bootstrap_servers, target.topic("clickstream"), messages)
        t0 = time.monotonic()
        worker = flooded.worker("flooded").start()
        worker.wait_ready(READY_TIMEOUT)
        wait_finished(flooded, len(good) + stored_bad)
        wait_dead_letters(flooded, sum(reasons.values()))
        flood_seconds = time.monotonic() - t0
        alive = worker.process is not None and worker.process.poll() is None
        crash_lines = [line for line in worker.log().splitlines() if CRASH_MARKS.search(line)]
        worker.stop()
        clean.worker("clean").start().wait_ready(READY_TIMEOUT)
        wait_finished(clean, len(good))
        for w in clean.workers:
            w.stop()
        stored = flooded.count("events")
        dead = dict(flooded.query("SELECT reason, count() FROM dead_letters FINAL GROUP BY reason"))
        sent = len(flood.messages)
        result.measured = {
            "messages_in": sent,
            "events_stored": stored,
            "dead_letters": sum(dead.values()),
            "duplicates_sent": duplicates,
            "dead_letters_by_reason": dict(sorted(dead.items())),
            "flooded_run_seconds": round(flood_seconds, 1),
            "worker_alive_after_flood": alive,
        }
        result.checks = [
            Check.equal("flooded worker alive", True, alive),
            Check.none_of("no crash in the flooded worker's log", crash_lines),
            Check.equal(
                "in = events stored + dead letters + duplicates",
                sent,
                stored + sum(dead.values()) + duplicates,
            ),
            Check.equal("events stored = good + valid odd events", len(good) + stored_bad, stored),
            Check.equal(
                "dead letters by reason", dict(sorted(reasons.items())), dict(sorted(dead.items()))
            ),
            Check.none_of("every dead letter has a reason and detail", no_reason(flooded)),
            *same_outputs(flooded, clean),
        ]
    result.seconds = time.monotonic() - started
    return result


def wait_dead_letters(run: Run, expected: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while run.count("dead_letters", final=False) < expected and time.monotonic() < deadline:
        time.sleep(1.0)


def no_reason(run: Run) -> list[Any]:
    valid = [r.value for r in RejectReason]
    return [
        list(row)
        for row in run.query(
            "SELECT `partition`, `offset`, reason, detail FROM dead_letters FINAL "
            "WHERE reason NOT IN %(valid)s OR detail = '' LIMIT 200",
            {"valid": tuple(valid)},
        )
    ]


def same_outputs(flooded: Run, clean: Run) -> list[Check]:
    """The real users' decisions and outcomes, user by user (flood users are left out).

    A window nobody's later event closes waits for the sweep, whose clock follows the last
    batches of each partition: at the end of the stream, *when* such a window closes (hence
    whether its ``no_conversion`` row exists yet) depends on timing, in both runs alike. So
    every outcome of an event is compared row by row, and the labels wherever both runs
    closed a window: no decision may have bought in one run and not in the other.
    """
    checks = []
    real = "position(user_id, '-flood-') = 0"
    queries = {
        "decisions per real user identical": "SELECT user_id, trigger_event_id, trigger "
        f"FROM decisions FINAL WHERE {real}",
        "outcomes of events per real user identical": "SELECT user_id, type, source_event_id, "
        f"round(order_total, 2) FROM outcomes FINAL WHERE {real} AND type != 'no_conversion'",
        "suppressions per real user identical": "SELECT user_id, trigger_event_id, reason "
        f"FROM suppressions FINAL WHERE {real}",
    }
    for name, sql in queries.items():
        a, b = Counter(clean.query(sql)), Counter(flooded.query(sql))
        diff = [
            {"row": list(row), "clean": a[row], "flooded": b[row]}
            for row in sorted(a.keys() | b.keys())
            if a[row] != b[row]
        ]
        checks.append(
            Check.none_of(
                name,
                diff,
                note=f"{sum(a.values())} rows without the flood, {sum(b.values())} with it",
            )
        )
    labels = (
        "SELECT decision_id, max(type = 'purchase') AS bought, max(type = 'no_conversion') "
        f"AS closed FROM outcomes FINAL WHERE {real} GROUP BY decision_id"
    )
    clean_labels = {d: (b, c) for d, b, c in clean.query(labels)}
    disagree = [
        {"decision_id": d, "clean": clean_labels[d], "flooded": (b, c)}
        for d, b, c in flooded.query(labels)
        if d in clean_labels
        and (b, c) != clean_labels[d]
        and (b or clean_labels[d][0])  # one run saw a purchase
    ]
    checks.append(Check.none_of("labels per real decision agree where both closed", disagree))
    return checks

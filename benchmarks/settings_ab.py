"""What a setting would change: one worker's catch-up and paced latency under each variant.

``promo bench`` measures the shipped profile. This puts variants of it side by side::

    python -m benchmarks.settings_ab '{}' '{"PROMO_BATCH_SIZE": "2000"}' --rates 2200,3000

Each variant is a JSON object of ``PROMO_*`` overrides on the local profile. In turn, and
again for every ``--rounds``, a fresh worker with the variant drains the same backlog, on a
topic of its own (its catch-up rate, until ClickHouse holds everything, as in ``promo
bench``), then is fed fresh users at each paced rate (event -> decision latency, the
worker's and the broker's CPU in cores). One JSON line per measurement. On a shared 2-core
machine absolute figures drift from run to run; the variants' differences within one run
are what to read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.ceilings import Backlog, produce_backlog, transport_ceiling
from benchmarks.latency import paced_latency
from benchmarks.pipeline import drain, pipeline_run
from benchmarks.server_cpu import server_pids
from chaos.servers import Servers, isolated_run


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    variants = [_variant(v) for v in args.variants]
    rates = [float(r) for r in args.rates.split(",") if r]
    for line in measure(variants, rates, args.events, args.seconds, args.rounds):
        print(json.dumps(line), flush=True)


def measure(
    variants: list[dict[str, str]],
    rates: list[float],
    events: int,
    seconds: float,
    rounds: int,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[dict[str, Any]]:
    servers = Servers.from_environment()
    servers.check()
    pids = server_pids(servers)
    lines: list[dict[str, Any]] = []
    for round_ in range(1, rounds + 1):
        for variant in variants:
            log(f"round {round_}: {variant}")
            # The same backlog on a topic of its own: the paced phases add to the topic the
            # worker reads, and the next variant must not read them as backlog.
            with isolated_run(servers, "ab-backlog", {}) as source:
                topic, users = produce_backlog(source, events, seed=11)
                bootstrap = servers.bootstrap_servers
                _, backlog = transport_ceiling(bootstrap, topic, events, users, pids)
                for line in _one_variant(servers, backlog, pids, variant, rates, seconds):
                    lines.append({"variant": variant, "round": round_, **line})
    return lines


def _one_variant(
    servers: Servers,
    backlog: Backlog,
    pids: dict[str, int | None],
    variant: dict[str, str],
    rates: list[float],
    seconds: float,
) -> list[dict[str, Any]]:
    """A fresh worker with ``variant`` through the backlog, then each paced rate."""
    with pipeline_run(servers, backlog, "ab", variant) as run:
        apart = variant.get("PROMO_SINKS_IN_WORKER") == "false"
        one = drain(run, backlog, 1, pids, 120 + backlog.events / 200, sinks_apart=apart)
        lines: list[dict[str, Any]] = [
            {"catch_up_events_per_s": one.events_per_s, "cpu_us_per_event": one.cpu_us_per_event}
        ]
        committed = sum(backlog.ends.values())
        for i, rate in enumerate(rates):
            phase = paced_latency(
                run,
                backlog,
                run.workers[0],
                pids,
                share=0.0,
                rate=rate,
                seconds=seconds,
                warmup_seconds=5.0,
                seed=20 + i,
                committed_before=committed,
            )
            committed += phase.events_sent
            figures = phase.to_json()
            lines.append(
                {
                    "rate": rate,
                    "event_to_decision": figures["event_to_decision"],
                    "drain_seconds_after_last_send": figures["drain_seconds_after_last_send"],
                    "worker_cores": figures["worker_cpu_share_of_a_core"],
                    "broker_cores": figures.get("broker_cpu_share_of_a_core"),
                }
            )
    return lines


def _variant(text: str) -> dict[str, str]:
    """A variant's overrides, checked: a typo must not measure the default profile twice.

    >>> _variant('{"PROMO_BATCH_SIZE": 2000}')
    {'PROMO_BATCH_SIZE': '2000'}
    >>> _variant('{"BATCH_SIZE": 2000}')
    Traceback (most recent call last):
    ...
    SystemExit: variant {"BATCH_SIZE": 2000}: every key must be a PROMO_* setting
    """
    overrides = json.loads(text)
    if not isinstance(overrides, dict) or not all(k.startswith("PROMO_") for k in overrides):
        raise SystemExit(f"variant {text}: every key must be a PROMO_* setting")
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in overrides.items()}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.settings_ab", description=__doc__)
    parser.add_argument("variants", nargs="+", help="JSON objects of PROMO_* overrides")
    parser.add_argument("--rates", default="", help="paced rates, events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="of each paced phase")
    parser.add_argument("--events", type=int, default=30_000, help="backlog events")
    parser.add_argument("--rounds", type=int, default=1, help="times through the variants")
    return parser


if __name__ == "__main__":
    main()

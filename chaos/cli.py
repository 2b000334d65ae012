"""``python -m chaos``: run the scenarios against the local servers, print one JSON summary,
exit 1 if any check failed (2 if a scenario could not run at all)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from chaos import broker_restart, crashes, flood, outage, settings_faults
from chaos.outcome import ScenarioResult
from chaos.servers import Servers

SCENARIOS = ("crashes", "flood", "settings", "outage", "broker")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument("--events", type=int, default=200_000, help="backlog events (crashes)")
    p.add_argument("--kills", type=int, default=5, help="SIGKILLs of the worker (crashes)")
    p.add_argument("--bad", type=int, default=100_000, help="bad messages (flood)")
    p.add_argument("--good", type=int, default=30_000, help="good events mixed in (flood)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated among {', '.join(SCENARIOS)}"
    )
    p.add_argument("--keep", action="store_true", help="keep topics and databases afterwards")
    p.add_argument("--json", action="store_true", help="print only the JSON summary")
    return p


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    servers = Servers.from_environment()
    servers.check()
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    plans: dict[str, Callable[[], ScenarioResult]] = {
        "crashes": lambda: crashes.run(
            servers, crashes.CrashConfig(args.events, args.kills, args.seed, args.keep)
        ),
        "flood": lambda: flood.run(
            servers, flood.FloodConfig(args.bad, args.good, args.seed + 12, args.keep)
        ),
        "settings": lambda: settings_faults.run(servers),
        "outage": lambda: outage.run(servers, outage.OutageConfig(keep=args.keep)),
        "broker": lambda: broker_restart.run(
            servers, broker_restart.BrokerRestartConfig(keep=args.keep)
        ),
    }
    started = time.monotonic()
    results: dict[str, Any] = {}
    ok = True
    for name in chosen:
        log(f"chaos: {name} ...")
        try:
            result = plans[name]()
        except Exception as exc:  # a scenario that cannot finish is a failure, with its cause
            result = ScenarioResult(
                name, error=f"{exc!r}"[:800] + "\n" + traceback.format_exc(limit=5)[-2000:]
            )
        ok = ok and result.ok
        log(
            f"chaos: {name} {'ok' if result.ok else 'FAILED'} in {result.seconds:.0f} s "
            f"{result.failed_checks() or ''}"
        )
        results[name] = result.to_json()
    return {
        "ok": ok,
        "seconds": round(time.monotonic() - started, 1),
        "servers": {"broker": servers.broker_url, "clickhouse": servers.clickhouse_url},
        "scenarios": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    summary = run(args, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(summary, indent=None if args.json else 2, default=str))
    return 0 if summary["ok"] else 1

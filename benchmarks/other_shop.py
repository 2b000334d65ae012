"""The same policy code in another shop: one where offers pay (60 % persuadables, 5 %
sleeping dogs, instead of 25 % and 15 %). A sound learner should find that value, where on
our default shop the best it can do is stay near break-even.

    python -m benchmarks.other_shop [seed] [--users N] [--days D] [--policies a,b,...] [--json]

It swaps the simulator's response-type shares in this process only (the forked evaluation
workers inherit them); everything else is ``promo evaluate --no-sql`` with default settings
(7 days of history; by default 20,000 users, 14 days and the policies below).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import simulator.policies
import simulator.population
from agents.app import engine_config
from promo.settings import Settings
from simulator.evaluate import EvaluationConfig, evaluate, format_summary
from simulator.population import ResponseType

SHARES = {
    ResponseType.PERSUADABLE: 0.60,
    ResponseType.SURE_THING: 0.15,
    ResponseType.LOST_CAUSE: 0.20,
    ResponseType.SLEEPING_DOG: 0.05,
}
POLICIES = ("none", "learned", "random", "propensity", "oracle")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.other_shop")
    parser.add_argument("seed", nargs="?", type=int, default=7)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    args = parser.parse_args(argv)
    profiles = {
        kind: dataclasses.replace(profile, share=SHARES.get(kind, profile.share))
        for kind, profile in simulator.population.RESPONSE_PROFILES.items()
    }
    simulator.population.RESPONSE_PROFILES = profiles
    simulator.policies.RESPONSE_PROFILES = profiles  # type: ignore[attr-defined]
    config = EvaluationConfig(
        engine=engine_config(Settings()),
        users=args.users,
        days=args.days,
        seed=args.seed,
        policies=tuple(p for p in args.policies.split(",") if p),
    )
    result = evaluate(config)
    print(json.dumps(result) if args.json else format_summary(result))


if __name__ == "__main__":
    main()

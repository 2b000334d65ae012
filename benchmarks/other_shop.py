"""The same policy code in another shop: one where offers pay (60 % persuadables, 5 %
sleeping dogs, instead of 25 % and 15 %). A sound learner should find that value, where on
our default shop the best it can do is stay near break-even.

    python -m benchmarks.other_shop [seed]

It swaps the simulator's response-type shares in this process only (the forked evaluation
workers inherit them); everything else is ``promo evaluate --no-sql`` with default settings.
"""

from __future__ import annotations

import dataclasses
import sys

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


def main(seed: int = 7) -> None:
    profiles = {
        kind: dataclasses.replace(profile, share=SHARES.get(kind, profile.share))
        for kind, profile in simulator.population.RESPONSE_PROFILES.items()
    }
    simulator.population.RESPONSE_PROFILES = profiles
    simulator.policies.RESPONSE_PROFILES = profiles  # type: ignore[attr-defined]
    config = EvaluationConfig(
        engine=engine_config(Settings()),
        users=20_000,
        days=14,
        seed=seed,
        policies=("none", "learned", "random", "propensity", "oracle"),
    )
    print(format_summary(evaluate(config)))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))

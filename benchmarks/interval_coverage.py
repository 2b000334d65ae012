"""How often a treatment-vs-control interval covers a zero effect on the simulator's spend.

No offers at all: the true effect is exactly zero, so a 95 % interval should contain 0 in
~95 % of shops. Prints the coverage of Welch's interval, the pooled-variance one, and the
wider of the two (what ``promo report`` uses) over many seeds.

    python -m benchmarks.interval_coverage [users] [days] [seeds]
"""

from __future__ import annotations

import sys

import numpy as np

from simulator.population import build_population
from simulator.shop import DAY_MS, Shop
from streams.evaluation import Moments, mean_difference
from streams.policy import in_control_group

START_MS = 1_700_438_400_000


def main(users: int = 1000, days: float = 4.0, seeds: int = 60) -> None:
    covered = {"welch": 0, "pooled": 0, "report (wider)": 0}
    for seed in range(seeds):
        population = build_population(users, seed)
        shop = Shop(population, start_ms=START_MS, run_id="c", seed=seed)
        shop.advance_events(START_MS + int(days * DAY_MS))
        y = np.array([shop.ledger(i).profit(0.3) for i in range(users)])
        c = np.array(
            [
                in_control_group(u.user_id, salt="promo-holdout-1", share=0.1)
                for u in population.users
            ]
        )
        t, k = y[~c], y[c]
        d = t.mean() - k.mean()
        welch = np.sqrt(t.var(ddof=1) / len(t) + k.var(ddof=1) / len(k))
        pooled_var = ((len(t) - 1) * t.var(ddof=1) + (len(k) - 1) * k.var(ddof=1)) / (users - 2)
        pooled = np.sqrt(pooled_var * (1 / len(t) + 1 / len(k)))
        covered["welch"] += abs(d) <= 1.96 * welch
        covered["pooled"] += abs(d) <= 1.96 * pooled
        e = mean_difference(Moments.of(list(t)), Moments.of(list(k)))
        covered["report (wider)"] += e.low <= 0 <= e.high
    print(f"{seeds} shops of {users} users, {days:g} days, no offers (true effect 0), 10 % control")
    for name, n in covered.items():
        print(f"  {name:<15} covers 0 in {n / seeds:.0%} of shops")


if __name__ == "__main__":
    main(*(t(a) for t, a in zip((int, float, int), sys.argv[1:], strict=False)))

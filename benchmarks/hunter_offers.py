"""What an offer to a coupon hunter costs, by the truth, against other response types.

    python -m benchmarks.hunter_offers [users] [seed]

A shop with 30 % coupon hunters (so that they get many offers) runs 14 days after 7 of
history twice with the same random numbers: once with a random policy deciding, gate off and
no control group, once with nothing sent. Each user's realised profit difference is regressed
on the offers of each code they were sent (least squares, per response type): the realised
profit of one more offer of that code. A hunter's ring mates use its coupons, so what an
offer to a hunter costs shows partly on its mates: the hunters' regression takes each
ring's offers and profit together.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np

from agents.app import engine_config
from promo.settings import Settings
from schemas.decisions import NO_OFFER
from simulator.closed_loop import play
from simulator.evaluate import START_MS
from simulator.policies import RandomPolicy
from simulator.population import ResponseType, build_population
from simulator.shop import Shop
from streams.abuse import OFF
from streams.engine import DecisionEngine
from streams.models import ModelSnapshot


def main(users: int = 3000, seed: int = 3) -> None:
    population = build_population(users, seed, coupon_hunters=0.3, casual_code_use=0.1)
    config = replace(engine_config(Settings()), abuse_threshold=OFF, control_share=0.0)

    def build(shop: Shop) -> DecisionEngine:
        snapshot = ModelSnapshot.initial(config.actions, 6, 42)
        return DecisionEngine(config, snapshot, RandomPolicy(config.actions))

    run = play(population, build, seed=seed, days=21.0, warmup_days=7.0, start_ms=START_MS)
    nothing = play(population, None, seed=seed, days=21.0, warmup_days=7.0, start_ms=START_MS)
    diff = run.profits - nothing.profits
    codes = [o.code for o in config.catalogue]
    index = {u.user_id: i for i, u in enumerate(population.users)}
    sent = np.zeros((len(population.users), len(codes)))
    for d in run.decisions:
        if d.chosen_offer != NO_OFFER:
            sent[index[d.user_id], codes.index(d.chosen_offer)] += 1
    # A user is its own group, a hunter its ring.
    groups = [f"ring{u.ring}" if u.ring >= 0 else u.user_id for u in population.users]
    names = sorted(set(groups))
    member = np.zeros((len(names), len(groups)))
    for i, g in enumerate(groups):
        member[names.index(g), i] = 1.0
    x, y = member @ sent, member @ diff
    for kind in ResponseType:
        users_of = np.array([u.response_type is kind for u in population.users])
        rows = (member @ users_of) > 0
        if not rows.any():
            continue
        coef, *_ = np.linalg.lstsq(x[rows], y[rows], rcond=None)
        per_offer = ", ".join(f"{c} {v:+.2f}" for c, v in zip(codes, coef, strict=True))
        offers, total = float(x[rows].sum()), float(y[rows].sum())
        print(
            f"{kind.value:<14} {int(users_of.sum()):>5} users, {offers:>6.0f} offers, "
            f"{total / max(offers, 1):+.2f} per offer overall; by code: {per_offer}"
        )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

"""How well scores of users' behaviour tell coupon hunters apart: ours against River's
``anomaly.HalfSpaceTrees``.

    python -m benchmarks.abuse_scores [users] [days] [seed]

A simulated shop with 5 % coupon hunters and other users who pay with a public code on 10 %
of their purchases runs ``days`` with a random policy deciding (so offers are shown and
clicked), through the engine's own per-event path. Then, for every user who bought at
least once, it prints the AUC against the simulator's truth (hunter or not) of:

- ``streams.abuse.abuse_score``: the Beta posterior of paying with codes we never sent;
- Half-Space Trees, fed online (user by user, score then learn) with five behaviour rates
  in [0, 1]: the share of purchases paid with such codes, offer clicks per offer shown,
  offer clicks per view, cart removals per cart add, and abandoned carts per cart add;
- Half-Space Trees on the same rates without the codes (behaviour alone);

and, at the threshold measured (0.5), the share of hunters gated and of the others.
"""

from __future__ import annotations

import sys

import numpy as np
from river import anomaly

from agents.app import engine_config
from promo.settings import Settings
from simulator.closed_loop import play
from simulator.evaluate import START_MS
from simulator.policies import RandomPolicy
from simulator.population import ResponseType, build_population
from simulator.shop import Shop
from streams.abuse import abuse_score, gates_user
from streams.engine import DecisionEngine
from streams.features import SlidingWindowFeatures
from streams.models import ModelSnapshot
from streams.user_state import UserState

#: The threshold measured with ``promo evaluate`` (README, "Abuse gating, measured").
GATE_AT = 0.5


def _rates(f: SlidingWindowFeatures) -> dict[str, float]:
    purchases, adds = f.count("purchase", "30d"), f.count("add_to_cart", "30d")
    shown, clicked = f.count("offer_shown", "30d"), f.count("offer_clicked", "30d")
    return {
        "codes": f.unsent_codes("30d") / max(purchases, 1),
        "clicks_per_shown": clicked / max(shown, 1),
        "clicks_per_view": min(clicked / max(f.count("view", "30d"), 1), 1.0),
        "removes_per_add": min(f.count("remove_from_cart", "30d") / max(adds, 1), 1.0),
        "abandoned_per_add": min(f.abandoned_carts("30d") / max(adds, 1), 1.0),
    }


def _score(f: SlidingWindowFeatures) -> float:
    return abuse_score(f.unsent_codes("30d"), f.count("purchase", "30d"))


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    ranks = np.argsort(np.argsort(scores, kind="stable"), kind="stable").astype(float)
    # average ranks of ties
    for value in np.unique(scores):
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg))


def _half_space_trees(rows: list[dict[str, float]], seed: int) -> np.ndarray:
    model = anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=250, seed=seed)
    scores = []
    for row in rows:
        scores.append(model.score_one(row))  # type: ignore[no-untyped-call]
        model.learn_one(row)  # type: ignore[no-untyped-call]  # River has no annotations
    return np.array(scores)


def main(users: int = 10_000, days: float = 14.0, seed: int = 1) -> None:
    population = build_population(users, seed, coupon_hunters=0.05, casual_code_use=0.1)
    config = engine_config(Settings())
    states: dict[str, UserState] = {}

    def build(shop: Shop) -> DecisionEngine:
        snapshot = ModelSnapshot.initial(config.actions, 6, 42)
        return DecisionEngine(config, snapshot, RandomPolicy(config.actions))

    play(population, build, seed=seed, days=days, start_ms=START_MS, states_out=states)
    hunter = {u.user_id: u.response_type is ResponseType.COUPON_HUNTER for u in population.users}
    order = np.random.default_rng(seed).permutation(sorted(states))
    buyers = [u for u in order if states[u].features.count("purchase", "30d") > 0]
    truth = np.array([hunter[u] for u in buyers])
    rows = [_rates(states[u].features) for u in buyers]
    ours = np.array([_score(states[u].features) for u in buyers])
    behaviour = [{k: v for k, v in row.items() if k != "codes"} for row in rows]
    threshold = GATE_AT
    gated = np.array([gates_user(s, threshold) for s in ours])
    print(f"{len(buyers):,} buyers, {int(truth.sum()):,} of them coupon hunters, {days:g} days")
    print(f"AUC, abuse_score (codes we never sent): {auc(ours, truth):.3f}")
    print(
        f"AUC, Half-Space Trees on five rates:     {auc(_half_space_trees(rows, seed), truth):.3f}"
    )
    hst_behaviour = _half_space_trees(behaviour, seed)
    print(f"AUC, Half-Space Trees without codes:    {auc(hst_behaviour, truth):.3f}")
    print(
        f"gated at {threshold}: {gated[truth].mean():.1%} of hunters, "
        f"{gated[~truth].mean():.2%} of the others"
    )


if __name__ == "__main__":
    args = sys.argv[1:4]
    main(
        int(args[0]) if args else 10_000,
        float(args[1]) if len(args) > 1 else 14.0,
        int(args[2]) if len(args) > 2 else 1,
    )

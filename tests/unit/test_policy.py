from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from streams.catalogue import DEFAULT_CATALOGUE
from streams.policy import (
    Choice,
    ContactLimits,
    choose_offer,
    in_control_group,
    in_explore_cohort,
    ineligibility,
    thompson_probabilities,
)
from streams.uplift import Belief

OFFERS = tuple(o.code for o in DEFAULT_CATALOGUE)
RATES = dict.fromkeys(OFFERS, 0.9)


def belief(effect: float, var: float, baseline: float = 0.1) -> Belief:
    return Belief(baseline, dict.fromkeys(OFFERS, effect), dict.fromkeys(OFFERS, var))


def choose(b: Belief, *, explore: bool = False, draw: float = 0.5, z: float = 0.84) -> Choice:
    return choose_offer(
        b,
        order_value=80.0,
        catalogue=DEFAULT_CATALOGUE,
        gross_margin=0.3,
        redemption_rates=RATES,
        z=z,
        explore=explore,
        draw=draw,
    )


def test_exploration_propensity_is_the_frequency_of_the_action() -> None:
    n = 2_000  # evenly spaced draws: each action's count is within one of n times its share
    counts: Counter[str] = Counter()
    logged: dict[str, float] = {}
    b = belief(0.5, 1.0)
    for i in range(n):
        c = choose(b, explore=True, draw=(i + 0.5) / n)
        counts[c.action] += 1
        logged[c.action] = c.propensity
    assert sum(logged.values()) == pytest.approx(1.0) and len(logged) > 2
    for action, p in logged.items():
        assert counts[action] / n == pytest.approx(p, abs=1.0 / n)


def test_no_offer_without_evidence() -> None:
    # The same optimistic mean effect: sent when the posterior is tight, not when it is wide.
    assert choose(belief(1.5, 0.01)).action != "none"
    c = choose(belief(1.5, 4.0))
    assert c.action == "none" and c.propensity == 1.0 and c.scores["pct10"] > 0


def test_nothing_is_given_away_when_offers_do_not_change_buying() -> None:
    c = choose(belief(0.0, 0.0001, baseline=0.5))
    assert c.action == "none"
    assert all(c.scores[o] < 0 for o in OFFERS)  # the coupon only costs


def test_exploration_skips_offers_that_surely_lose() -> None:
    # A tight posterior of no effect: every offer surely loses, so even exploring sends none.
    choices = {choose(belief(0.0, 0.0001), explore=True, draw=d / 10).action for d in range(10)}
    assert choices == {"none"}


def test_thompson_probabilities_are_the_chance_each_sampled_gain_is_highest() -> None:
    # Against sampling itself: draw every offer's effect from its posterior, take the argmax.
    b = Belief(
        0.12,
        {"pct10": 0.4, "pct20": 0.7, "free_shipping": -0.2, "bundle15": 0.1},
        {"pct10": 0.3, "pct20": 0.8, "free_shipping": 1.5, "bundle15": 0.05},
    )
    nets = {"pct10": 20.0, "pct20": 16.0, "free_shipping": 19.0, "bundle15": 23.0}
    baseline = 0.12 * 24.0
    exact = thompson_probabilities(b, nets, baseline)
    rng = np.random.default_rng(7)
    gains = [np.zeros(400_000)]
    for a in OFFERS:
        effect = rng.normal(b.effect_mean[a], math.sqrt(b.effect_var[a]), 400_000)
        gains.append(nets[a] / (1.0 + np.exp(-(math.log(0.12 / 0.88) + effect))) - baseline)
    wins = np.bincount(np.vstack(gains).argmax(axis=0), minlength=5) / 400_000
    assert sum(exact.values()) == pytest.approx(1.0)
    for action, share in zip(("none", *OFFERS), wins, strict=True):
        assert exact.get(action, 0.0) == pytest.approx(share, abs=0.004), action


def test_exploration_draws_by_thompson_sampling() -> None:
    # Exploring, each action is taken as often as Thompson sampling would take it: the offer
    # that probably loses is rarely sent, not a fifth of the time.
    b = Belief(0.1, {"pct10": 0.8, "pct20": -0.5, "free_shipping": -0.5, "bundle15": -0.5},
               dict.fromkeys(OFFERS, 1.0))  # fmt: skip
    c = choose(b, explore=True, draw=0.5)
    assert c.explored and c.probabilities == thompson_probabilities(
        b, {o.code: 24.0 - 0.9 * o.cost(80.0) for o in DEFAULT_CATALOGUE}, 0.1 * 24.0
    )
    assert c.probabilities["pct10"] > 0.5 and c.probabilities["pct20"] < 0.05


def test_cost_counts_only_redeemed_purchases() -> None:
    pct20 = (DEFAULT_CATALOGUE[1],)
    b = Belief(0.1, {"pct20": 0.4}, {"pct20": 0.0001})

    def action(redeemed_share: float) -> str:
        return choose_offer(
            b,
            order_value=80.0,
            catalogue=pct20,
            gross_margin=0.3,
            redemption_rates={"pct20": redeemed_share},
            z=0.84,
            explore=False,
            draw=0.5,
        ).action

    # The same lift pays if few buyers use the coupon, not if nearly all do.
    assert (action(0.9), action(0.1)) == ("none", "pct20")


def test_control_group_is_sticky_and_sized() -> None:
    users = [f"u{i}" for i in range(20_000)]
    share = sum(in_control_group(u, salt="s", share=0.1) for u in users) / len(users)
    assert share == pytest.approx(0.1, abs=0.01)
    both = sum(
        in_control_group(u, salt="s", share=0.5) and in_explore_cohort(u, salt="s", share=0.5)
        for u in users
    )
    assert both / len(users) == pytest.approx(0.25, abs=0.015)  # independent draws
    assert all(
        in_control_group(u, salt="s", share=0.1) == in_control_group(u, salt="s", share=0.1)
        for u in users[:100]
    )


LIMITS = ContactLimits(cooldown_ms=60, max_per_day=1, max_per_week=2, max_open_decisions=3)
DAY = 86_400_000


@pytest.mark.parametrize(
    ("now", "last", "offers", "open_", "why"),
    [
        (1000, 990, [], 0, "cooldown"),
        (1000, 100, [], 3, "open_decisions"),
        (DAY, 0, [10], 0, "daily_cap"),
        (3 * DAY, 0, [10, DAY + 10], 0, "weekly_cap"),
        (3 * DAY, 0, [10], 0, None),
    ],
)
def test_ineligibility(now: int, last: int, offers: list[int], open_: int, why: str | None) -> None:
    assert (
        ineligibility(
            now, last_decision=last, offer_times=offers, open_decisions=open_, limits=LIMITS
        )
        == why
    )

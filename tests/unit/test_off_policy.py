"""Off-policy estimators on synthetic logs whose logging policy and true rewards are known.

The shop: a context ``x`` in [0, 1], three actions, a true purchase probability per action,
and a reward of ``margin * value - cost`` when the customer buys. The logging policy is a
known stochastic policy with full support, so IPS and DR are unbiased and SNIPS nearly so.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec
from streams.off_policy import (
    OffPolicyEstimate,
    TargetPolicy,
    estimate_policy_value,
    modelled_reward,
    net_profit,
)

Floats = npt.NDArray[np.float64]
ACTIONS = ("none", "pct10", "free_shipping")
MARGIN = 0.3
CATALOGUE = (*DEFAULT_CATALOGUE, OfferSpec("five_off", "fixed_off", 5.0, "5 off", "F5"))


def buy_probability(x: Floats, action: str) -> Floats:
    return {
        "none": 0.10 + 0.20 * x,
        "pct10": 0.20 + 0.10 * x,
        "free_shipping": 0.05 + 0.40 * x,
    }[action]


def value_if_bought(x: Floats, action: str) -> Floats:
    order = 50.0 + 100.0 * x
    cost = {"none": 0.0 * x, "pct10": 0.1 * order, "free_shipping": 4.9 + 0.0 * x}[action]
    return MARGIN * order - cost


def expected_reward(x: Floats, action: str) -> Floats:
    return buy_probability(x, action) * value_if_bought(x, action)


def logging_probs(x: Floats) -> Floats:
    """(n, 3) probabilities of the logging policy, each at least 0.1."""
    raw = np.stack([1.0 + 0 * x, 0.5 + x, 1.5 - x], axis=1)
    probs: Floats = 0.1 + 0.7 * raw / raw.sum(axis=1, keepdims=True)
    return probs


Target = Callable[[Floats], list[str]]
TARGETS: dict[str, Target] = {
    "none": lambda x: ["none"] * len(x),
    "always pct10": lambda x: ["pct10"] * len(x),
    "free_shipping above 0.5": lambda x: ["free_shipping" if v > 0.5 else "none" for v in x],
}


def per_row(f: Callable[[Floats, str], Floats], x: Floats, actions: list[str]) -> Floats:
    """``f(x[i], actions[i])`` for every row."""
    out, names = np.empty(len(x)), np.array(actions)
    for a in ACTIONS:
        mask = names == a
        out[mask] = f(x[mask], a)
    return out


class Logs:
    """``n`` logged decisions: contexts, actions drawn from the logging policy, rewards."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.random(n)
        probs = logging_probs(self.x)
        index = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
        self.actions = [ACTIONS[i] for i in index]
        self.propensities: Floats = probs[np.arange(n), index]
        bought = rng.random(n) < per_row(buy_probability, self.x, self.actions)
        self.rewards: Floats = np.where(bought, per_row(value_if_bought, self.x, self.actions), 0.0)

    def truth(self, actions: list[str]) -> float:
        """Mean expected reward of taking ``actions`` in these contexts: the estimand."""
        return float(per_row(expected_reward, self.x, actions).mean())

    def estimate(self, targets: list[str], model: str = "rough") -> OffPolicyEstimate:
        def q(actions: list[str]) -> Floats:
            exact = per_row(expected_reward, self.x, actions)
            return {"perfect": exact, "rough": 0.7 * exact + 1.0, "zero": 0 * exact}[model]

        return estimate_policy_value(
            self.rewards, self.propensities, self.actions, targets, q(self.actions), q(targets)
        )


def standard_error(e: OffPolicyEstimate, name: str) -> float:
    interval = getattr(e, name)
    return float((interval.high - interval.low) / (2 * 1.959964))


@pytest.mark.parametrize("target", list(TARGETS))
def test_estimates_are_close_to_the_truth_on_many_rows(target: str) -> None:
    logs = Logs(20_000, seed=11)
    actions = TARGETS[target](logs.x)
    truth = logs.truth(actions)

    e = logs.estimate(actions)

    for name in ("ips", "snips", "dr"):
        value = getattr(e, name).value
        assert abs(value - truth) < 4 * standard_error(e, name), (name, value, truth)
    assert e.n == 20_000 and e.unsupported == 0
    assert 0 < e.effective_sample_size <= e.matched


def test_ips_and_dr_are_unbiased_and_their_intervals_cover() -> None:
    errors: dict[str, list[float]] = {"ips": [], "snips": [], "dr": []}
    covered = dict.fromkeys(errors, 0)
    reps = 300
    for seed in range(reps):
        logs = Logs(300, seed=1000 + seed)
        actions = TARGETS["free_shipping above 0.5"](logs.x)
        truth = logs.truth(actions)
        e = logs.estimate(actions)
        for name in errors:
            interval = getattr(e, name)
            errors[name].append(interval.value - truth)
            covered[name] += interval.low <= truth <= interval.high
    for name, err in errors.items():
        mean, sd = float(np.mean(err)), float(np.std(err, ddof=1))
        assert abs(mean) < 4 * sd / math.sqrt(reps), (name, mean, sd)
        assert covered[name] / reps > 0.88, (name, covered[name])


@pytest.mark.parametrize("target", ACTIONS)
def test_ips_and_dr_are_exactly_unbiased_over_every_possible_log(target: str) -> None:
    # One context: the expectation over the logging policy is a sum over the three actions.
    mu = {"none": 0.5, "pct10": 0.3, "free_shipping": 0.2}
    reward = {"none": 1.0, "pct10": 4.0, "free_shipping": 10.0}
    q = {"none": 2.0, "pct10": 0.0, "free_shipping": 7.0}  # a poor model: DR must not care
    expected = dict.fromkeys(("ips", "dr"), 0.0)
    for a, p in mu.items():
        e = estimate_policy_value([reward[a]], [p], [a], [target], [q[a]], [q[target]])
        expected["ips"] += p * e.ips.value
        expected["dr"] += p * e.dr.value
    assert expected["ips"] == pytest.approx(reward[target], rel=1e-12)
    assert expected["dr"] == pytest.approx(reward[target], rel=1e-12)


def test_dr_with_a_perfect_reward_model_varies_less_than_ips() -> None:
    # The rewards are mostly purchase noise (0 or the order's margin), which no model removes:
    # a perfect model takes away the part explained by the context, here about a quarter.
    ips, dr, ips_se, dr_se = [], [], [], []
    for seed in range(200):
        logs = Logs(300, seed=5000 + seed)
        actions = TARGETS["free_shipping above 0.5"](logs.x)
        truth = logs.truth(actions)
        e = logs.estimate(actions, model="perfect")
        ips.append(e.ips.value - truth)
        dr.append(e.dr.value - truth)
        ips_se.append(standard_error(e, "ips"))
        dr_se.append(standard_error(e, "dr"))
    assert np.var(dr, ddof=1) < 0.85 * np.var(ips, ddof=1)
    assert np.mean(dr_se) < 0.95 * np.mean(ips_se)  # and its intervals say so


def test_dr_without_a_reward_model_is_ips() -> None:
    logs = Logs(500, seed=3)
    e = logs.estimate(TARGETS["always pct10"](logs.x), model="zero")
    assert e.dr == e.ips


def test_snips_normalises_by_the_weights() -> None:
    # Every matched row weighs 1 / 0.5: SNIPS is the mean reward of the matched rows.
    e = estimate_policy_value(
        [4.0, 0.0, 2.0, 9.0], [0.5] * 4, ["a", "a", "a", "b"], ["a"] * 4, [0.0] * 4, [0.0] * 4
    )
    assert e.snips.value == pytest.approx(2.0)
    assert e.ips.value == pytest.approx(12.0 / 4)
    assert (e.n, e.matched) == (4, 3)
    assert e.effective_sample_size == pytest.approx(3.0)
    # Delta method: Σ w² (r - SNIPS)² / (Σ w)² = 4 * (4 + 4 + 0) / 36.
    assert (e.snips.high - e.snips.value) / 1.959964 == pytest.approx(math.sqrt(32 / 36), 1e-5)


def test_the_serving_choice_is_weighted_by_one() -> None:
    # policy_offer is the logging policy's own draw: the target *is* the logging policy, whose
    # value is the mean of the expected rewards under the logging distribution.
    logs = Logs(20_000, seed=21)
    serving = TargetPolicy.serving_choice()
    probs = logging_probs(logs.x)
    truth = float(
        np.mean(sum(probs[:, i] * expected_reward(logs.x, a) for i, a in enumerate(ACTIONS)))
    )
    targets = [serving.action_for(a) for a in logs.actions]
    weights = [serving.propensity_for(p) for p in logs.propensities]
    zeros = [0.0] * len(targets)

    right = estimate_policy_value(logs.rewards, weights, logs.actions, targets, zeros, zeros)
    naive = estimate_policy_value(
        logs.rewards, logs.propensities, logs.actions, targets, zeros, zeros
    )

    assert right.ips.value == pytest.approx(float(np.mean(logs.rewards)))
    assert abs(right.ips.value - truth) < 4 * standard_error(right, "ips")
    assert abs(naive.ips.value - truth) > 10 * standard_error(naive, "ips")


def test_unsupported_rows_are_certain_rows_with_another_action() -> None:
    e = estimate_policy_value(
        [1.0, 2.0, 3.0, 4.0],
        [1.0, 1.0, 0.5, 0.5],
        ["none", "pct10", "none", "pct10"],
        ["pct10"] * 4,
        [0.0] * 4,
        [0.0] * 4,
    )
    assert (e.matched, e.unsupported) == (2, 1)


def test_degenerate_logs() -> None:
    one = estimate_policy_value([3.0], [0.5], ["a"], ["a"], [1.0], [1.0])
    assert one.ips.value == 6.0 and math.isnan(one.ips.low) and math.isnan(one.snips.high)
    unmatched = estimate_policy_value(
        [3.0, 1.0], [0.5, 0.5], ["a", "a"], ["b", "b"], [1.0] * 2, [2.0] * 2
    )
    assert unmatched.ips.value == 0.0 and unmatched.dr.value == 2.0
    assert math.isnan(unmatched.snips.value) and unmatched.effective_sample_size == 0.0
    empty = estimate_policy_value([], [], [], [], [], [])
    assert empty.n == 0 and math.isnan(empty.ips.value) and math.isnan(empty.dr.value)


@pytest.mark.parametrize("propensity", [0.0, -0.1, 1.5, float("nan")])
def test_impossible_propensities_are_refused(propensity: float) -> None:
    with pytest.raises(ValueError, match="propensities"):
        estimate_policy_value([1.0], [propensity], ["a"], ["a"], [0.0], [0.0])


def test_rows_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        estimate_policy_value([1.0, 2.0], [0.5], ["a", "a"], ["a", "a"], [0.0] * 2, [0.0] * 2)
    with pytest.raises(ValueError, match="as long as rewards"):
        estimate_policy_value([1.0], [0.5], ["a", "a"], ["a"], [0.0], [0.0])


def test_modelled_reward() -> None:
    probs = {"none": 0.1, "pct20": 0.3, "bundle15": float("nan")}

    def q(action: str, probs: dict[str, float], order_value: float = 100.0) -> list[float]:
        profit, conversion = modelled_reward(
            action, probs, order_value, catalogue=CATALOGUE, gross_margin=0.3
        )
        return [round(profit, 9), conversion]

    assert q("none", probs) == [3.0, 0.1]
    assert q("pct20", probs) == [3.0, 0.3]  # 0.3 * (30 - 20)
    assert q("bundle15", probs) == [0.0, 0.0]  # nan: the model did not score it
    assert q("pct10", probs) == [0.0, 0.0]  # absent: the model did not score it
    assert q("gone", {"gone": 0.5}) == [15.0, 0.5]  # no longer in the catalogue: costs nothing
    assert q("five_off", {"five_off": 0.5}, order_value=4.0) == [-1.4, 0.5]  # capped at 4


def test_net_profit_counts_margin_before_the_discount() -> None:
    assert net_profit(0.0, 0.0, 0.3) == 0.0
    assert net_profit(100.0, 0.0, 0.3) == pytest.approx(30.0)
    assert net_profit(90.0, 10.0, 0.3) == pytest.approx(20.0)

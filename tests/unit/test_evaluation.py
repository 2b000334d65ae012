"""Evaluation maths against recomputation from scratch (numpy on the raw values, and SciPy,
which River already brings in, as an independent implementation of the distributions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy import stats

from streams.evaluation import (
    Moments,
    deterministic_target_probs,
    mean_difference,
    mean_interval,
    net_margin_moments,
    policy_value,
    promotion_roi,
    proportion_difference,
    relative_uplift,
    student_t_quantile,
    wilson_interval,
)

amounts = st.floats(min_value=0, max_value=1e4, allow_nan=False)
samples = st.lists(amounts, min_size=2, max_size=40)
margins = st.floats(min_value=0.01, max_value=1.0)


def spread_is_resolvable(values: list[float]) -> bool:
    """Variance from sums of squares loses digits when values barely differ: the views'
    per-decision money figures differ by whole orders, so test that regime."""
    return bool(np.var(values) > 1e-6 * (1 + np.mean(values) ** 2))


@given(st.lists(amounts, max_size=50))
def test_moments_match_numpy(values: list[float]) -> None:
    m = Moments.of(values)
    assert m.n == len(values)
    if len(values) >= 1:
        assert m.mean == pytest.approx(np.mean(values), rel=1e-9, abs=1e-9)
    if len(values) >= 2:
        assert m.variance == pytest.approx(np.var(values, ddof=1), rel=1e-6, abs=1e-6)
    else:
        assert math.isnan(m.variance)


@given(st.lists(st.tuples(amounts, amounts), min_size=1, max_size=40), margins)
def test_net_margin_moments_equal_those_of_the_per_decision_net_margin(
    pairs: list[tuple[float, float]], margin: float
) -> None:
    revenue = np.array([r for r, _ in pairs])
    discount = np.array([d for _, d in pairs])
    net = margin * (revenue + discount) - discount
    m = net_margin_moments(
        len(pairs),
        float(revenue.sum()),
        float((revenue**2).sum()),
        float(discount.sum()),
        float((discount**2).sum()),
        float((revenue * discount).sum()),
        margin,
    )
    expected = Moments.of(list(net))
    assert m.total == pytest.approx(expected.total, rel=1e-9, abs=1e-6)
    assert m.total_sq == pytest.approx(expected.total_sq, rel=1e-9, abs=1e-3)


@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_matches_scipy(case: tuple[int, int]) -> None:
    successes, n = case
    ours = wilson_interval(successes, n)
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert ours.value == successes / n
    assert ours.low == pytest.approx(ci.low, abs=1e-9)
    assert ours.high == pytest.approx(ci.high, abs=1e-9)


@given(
    st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_newcombe_difference_from_scipy_wilson_intervals(
    treatment: tuple[int, int], control: tuple[int, int]
) -> None:
    (xt, nt), (xc, nc) = treatment, control
    t = stats.binomtest(xt, nt).proportion_ci(method="wilson")
    c = stats.binomtest(xc, nc).proportion_ci(method="wilson")
    pt, pc = xt / nt, xc / nc
    ours = proportion_difference(xt, nt, xc, nc)
    assert ours.value == pytest.approx(pt - pc)
    assert ours.low == pytest.approx(pt - pc - math.sqrt((pt - t.low) ** 2 + (c.high - pc) ** 2))
    assert ours.high == pytest.approx(pt - pc + math.sqrt((t.high - pt) ** 2 + (pc - c.low) ** 2))
    assert -1 <= ours.low <= ours.value <= ours.high <= 1


def test_newcombe_keeps_coverage_when_control_never_converts() -> None:
    e = proportion_difference(3, 50, 0, 50)
    assert e.value == pytest.approx(0.06)
    assert e.low < 0 < e.high  # Wald would give a zero-width control term here


def test_empty_groups_give_nan_not_an_error() -> None:
    assert math.isnan(wilson_interval(0, 0).value)
    assert math.isnan(proportion_difference(0, 0, 1, 2).low)
    assert math.isnan(mean_difference(Moments.of([1.0]), Moments.of([1.0, 2.0])).low)


@given(samples, samples)
def test_welch_interval_matches_scipy(treatment: list[float], control: list[float]) -> None:
    assume(spread_is_resolvable(treatment) and spread_is_resolvable(control))
    ours = mean_difference(Moments.of(treatment), Moments.of(control))
    ci = stats.ttest_ind(treatment, control, equal_var=False).confidence_interval(0.95)
    assert ours.value == pytest.approx(np.mean(treatment) - np.mean(control), abs=1e-6)
    assert ours.low == pytest.approx(ci.low, rel=1e-5, abs=1e-5)
    assert ours.high == pytest.approx(ci.high, rel=1e-5, abs=1e-5)


def test_welch_without_variance_is_a_point() -> None:
    e = mean_difference(Moments.of([2.0, 2.0]), Moments.of([1.0, 1.0, 1.0]))
    assert (e.value, e.low, e.high) == (1.0, 1.0, 1.0)


@given(samples)
def test_mean_interval_matches_scipy(values: list[float]) -> None:
    assume(spread_is_resolvable(values))
    ours = mean_interval(Moments.of(values))
    low, high = stats.t.interval(0.95, len(values) - 1, np.mean(values), stats.sem(values))
    assert ours.low == pytest.approx(low, rel=1e-5, abs=1e-5)
    assert ours.high == pytest.approx(high, rel=1e-5, abs=1e-5)


@given(st.floats(0.001, 0.999), st.floats(0.3, 1e5))
def test_student_t_quantile_matches_scipy(p: float, df: float) -> None:
    assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-7, abs=1e-7)


def test_relative_uplift() -> None:
    assert relative_uplift(0.06, 0.04) == pytest.approx(0.5)
    assert math.isnan(relative_uplift(0.06, 0.0))


@given(samples, samples, samples, margins)
def test_roi_is_net_margin_gained_per_unit_of_extra_discount(
    revenue_t: list[float], discount_t: list[float], revenue_c: list[float], margin: float
) -> None:
    """From raw per-decision figures: ROI = (Δ gross margin - Δ discount) / Δ discount."""
    n = min(len(revenue_t), len(discount_t))
    revenue_t, discount_t = revenue_t[:n], discount_t[:n]
    extra_discount = float(np.mean(discount_t))  # control gives no discount
    assume(extra_discount > 1e-3)
    gross_t = margin * (np.array(revenue_t) + np.array(discount_t))
    gross_c = margin * np.array(revenue_c)
    expected = (float(gross_t.mean() - gross_c.mean()) - extra_discount) / extra_discount
    roi = promotion_roi(
        float(np.mean(revenue_t)), extra_discount, float(np.mean(revenue_c)), 0.0, margin
    )
    assert roi == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # The same as the net margin gained per unit of discount.
    net_t = float((gross_t - np.array(discount_t)).mean())
    assert roi == pytest.approx((net_t - gross_c.mean()) / extra_discount, rel=1e-9, abs=1e-9)


def test_roi_needs_an_investment() -> None:
    assert math.isnan(promotion_roi(10.0, 0.0, 5.0, 0.0, gross_margin=0.3))


logged = st.lists(
    st.tuples(st.floats(0.01, 1.0), st.floats(-100, 100), st.just(0.0) | st.floats(1e-6, 1.0)),
    min_size=1,
    max_size=60,
)


@given(logged)
def test_ips_and_snips_match_explicit_sums(rows: list[tuple[float, float, float]]) -> None:
    p = [r[0] for r in rows]
    rewards = [r[1] for r in rows]
    target = [r[2] for r in rows]
    v = policy_value(p, rewards, target)
    weights = [t / q for t, q in zip(target, p, strict=True)]
    weighted = [w * r for w, r in zip(weights, rewards, strict=True)]
    assert v.n == len(rows)
    assert v.ips.value == pytest.approx(sum(weighted) / len(rows), rel=1e-9, abs=1e-9)
    if sum(weights) > 0:
        assert v.snips == pytest.approx(sum(weighted) / sum(weights), rel=1e-9, abs=1e-9)
        ess = sum(weights) ** 2 / sum(w * w for w in weights)
        assert v.effective_sample_size == pytest.approx(ess)
        assert v.effective_sample_size <= len(rows) + 1e-9


def test_evaluating_the_logging_policy_itself_gives_the_logged_mean() -> None:
    p = [0.2, 0.5, 0.9, 0.4]
    rewards = [1.0, 0.0, 3.0, 2.0]
    v = policy_value(p, rewards, target_probs=p)
    assert v.ips.value == pytest.approx(1.5)
    assert v.snips == pytest.approx(1.5)
    assert v.effective_sample_size == pytest.approx(4.0)


def test_ips_is_unbiased_on_a_simulated_log() -> None:
    """Log a uniform random policy over two actions; the target always takes action 'b'."""
    rng = np.random.default_rng(7)
    n = 20_000
    actions = rng.choice(["a", "b"], size=n)
    rewards = np.where(actions == "b", rng.normal(2.0, 1.0, n), rng.normal(0.5, 1.0, n))
    target = deterministic_target_probs(list(actions), ["b"] * n)
    v = policy_value([0.5] * n, list(rewards), target)
    assert v.ips.low < 2.0 < v.ips.high
    assert v.snips == pytest.approx(2.0, abs=0.05)
    assert v.effective_sample_size == pytest.approx(n / 2, rel=0.05)


def test_policy_value_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="propensities"):
        policy_value([0.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="one length"):
        policy_value([0.5, 0.5], [1.0], [1.0])
    assert policy_value([], [], []).n == 0

"""Evaluation maths against recomputation from scratch (numpy on the raw values, and SciPy,
which River already brings in, as an independent implementation of the distributions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from streams.evaluation import (
    Estimate,
    Moments,
    PairMoments,
    cuped_adjusted,
    cuped_difference,
    cuped_theta,
    deterministic_target_probs,
    difference_standard_error,
    mean_difference,
    mean_interval,
    minimum_detectable_effect,
    net_profit_moments,
    policy_value,
    proportion_difference,
    ratio_of_differences,
    relative_uplift,
    student_t_quantile,
    wilson_interval,
)
from streams.off_policy import net_profit

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


@given(st.lists(st.tuples(amounts, amounts, st.none() | amounts), min_size=1, max_size=40), margins)
def test_net_profit_moments_equal_those_of_the_per_decision_net_profit(
    orders: list[tuple[float, float, float | None]], margin: float
) -> None:
    """The views' split (rate_base, net_fixed) against each order's net profit by definition:
    its own margin where known, the rate on revenue + discount elsewhere, minus the discount."""
    net = [net_profit(r, d, margin, order_margin=g) for r, d, g in orders]
    rate_base = np.array([r + d if g is None else 0.0 for r, d, g in orders])
    net_fixed = np.array([(0.0 if g is None else g) - d for _, d, g in orders])
    m = net_profit_moments(
        len(orders),
        float(rate_base.sum()),
        float((rate_base**2).sum()),
        float(net_fixed.sum()),
        float((net_fixed**2).sum()),
        float((rate_base * net_fixed).sum()),
        margin,
    )
    expected = Moments.of(net)
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
def test_interval_is_the_wider_of_welch_and_pooled(
    treatment: list[float], control: list[float]
) -> None:
    assume(spread_is_resolvable(treatment) and spread_is_resolvable(control))
    ours = mean_difference(Moments.of(treatment), Moments.of(control))
    welch = stats.ttest_ind(treatment, control, equal_var=False).confidence_interval(0.95)
    pooled = stats.ttest_ind(treatment, control, equal_var=True).confidence_interval(0.95)
    wider = welch if welch.high - welch.low >= pooled.high - pooled.low else pooled
    assert ours.value == pytest.approx(np.mean(treatment) - np.mean(control), abs=1e-6)
    assert ours.low == pytest.approx(wider.low, rel=1e-5, abs=1e-5)
    assert ours.high == pytest.approx(wider.high, rel=1e-5, abs=1e-5)


def test_difference_without_variance_is_a_point() -> None:
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


@given(
    st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
)
def test_relative_uplift_is_scipys_risk_ratio_interval_less_one(
    treatment: tuple[int, int], control: tuple[int, int]
) -> None:
    (xt, nt), (xc, nc) = treatment, control
    ours = relative_uplift(xt, nt, xc, nc)
    rr = stats.contingency.relative_risk(xt, nt, xc, nc)
    ci = rr.confidence_interval(0.95)
    assert ours.value == pytest.approx(rr.relative_risk - 1)
    assert ours.low == pytest.approx(ci.low - 1, rel=1e-9, abs=1e-9)
    assert ours.high == pytest.approx(ci.high - 1, rel=1e-9, abs=1e-9)


def test_relative_uplift_without_control_conversions_is_not_computable() -> None:
    assert math.isnan(relative_uplift(6, 100, 0, 100).value)
    e = relative_uplift(0, 100, 4, 100)
    assert e.value == -1.0 and math.isnan(e.low)


def test_an_interval_excludes_zero_only_when_wholly_on_one_side() -> None:
    assert Estimate(1.0, 0.1, 2.0).excludes_zero
    assert Estimate(-1.0, -2.0, -0.1).excludes_zero
    assert not Estimate(1.0, -0.1, 2.0).excludes_zero
    assert not Estimate(1.0, 0.0, 2.0).excludes_zero
    assert not Estimate(1.0, float("nan"), float("nan")).excludes_zero


# --- minimum detectable effect -----------------------------------------------------------------


@given(samples, samples)
def test_difference_standard_error_matches_numpy(t: list[float], c: list[float]) -> None:
    pooled = ((len(t) - 1) * np.var(t, ddof=1) + (len(c) - 1) * np.var(c, ddof=1)) / (
        len(t) + len(c) - 2
    )
    welch = math.sqrt(np.var(t, ddof=1) / len(t) + np.var(c, ddof=1) / len(c))
    expected = max(welch, math.sqrt(pooled * (1 / len(t) + 1 / len(c))))
    # Sums of squares lose digits on near-constant samples: tolerance scales with the values.
    scale = 1 + max(abs(v) for v in t + c)
    assert difference_standard_error(Moments.of(t), Moments.of(c)) == pytest.approx(
        expected, rel=1e-6, abs=1e-6 * scale
    )


def test_minimum_detectable_effect_is_z_quantiles_times_the_standard_error() -> None:
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert minimum_detectable_effect(3.0) == pytest.approx(z * 3.0)
    assert minimum_detectable_effect(3.0, confidence=0.9, power=0.9) == pytest.approx(
        (stats.norm.ppf(0.95) + stats.norm.ppf(0.9)) * 3.0
    )
    with pytest.raises(ValueError, match="power"):
        minimum_detectable_effect(1.0, power=1.0)


def test_a_true_effect_of_one_mde_is_detected_in_80_percent_of_experiments() -> None:
    """Simulate the experiment: effect = the MDE computed from the population's spread."""
    rng = np.random.default_rng(3)
    n_t, n_c, sd = 400, 100, 90.0
    mde = minimum_detectable_effect(math.sqrt(sd**2 / n_t + sd**2 / n_c))
    detected = [
        mean_difference(
            Moments.of(rng.normal(mde, sd, n_t)), Moments.of(rng.normal(0.0, sd, n_c))
        ).excludes_zero
        for _ in range(2000)
    ]
    assert np.mean(detected) == pytest.approx(0.8, abs=0.035)


# --- ratio of differences (ROI) ----------------------------------------------------------------

pairs = st.lists(st.tuples(amounts, amounts), min_size=2, max_size=40)


@given(pairs, pairs)
def test_pair_moments_match_numpy_and_pool_like_concatenation(
    t: list[tuple[float, float]], c: list[tuple[float, float]]
) -> None:
    m = PairMoments.of([y for y, _ in t], [x for _, x in t])
    assert m.total_xy == pytest.approx(sum(x * y for y, x in t), rel=1e-9)
    if spread_is_resolvable([y for y, _ in t]) and spread_is_resolvable([x for _, x in t]):
        expected = np.cov([y for y, _ in t], [x for _, x in t])[0, 1]
        assert m.covariance == pytest.approx(expected, rel=1e-6, abs=1e-3)
    both = t + c
    pooled = m.pooled_with(PairMoments.of([y for y, _ in c], [x for _, x in c]))
    expected_pool = PairMoments.of([y for y, _ in both], [x for _, x in both])
    for ours, theirs in ((pooled.y, expected_pool.y), (pooled.x, expected_pool.x)):
        assert ours.n == theirs.n
        assert ours.total == pytest.approx(theirs.total, rel=1e-9)
        assert ours.total_sq == pytest.approx(theirs.total_sq, rel=1e-9)
    assert pooled.total_xy == pytest.approx(expected_pool.total_xy, rel=1e-9)


def _roi_per_user(rng: np.random.Generator, n: int, treated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Net profit and discount per user: treated users get a 10 % coupon and buy more."""
    buys = rng.random(n) < (0.3 if treated else 0.2)
    paid = np.where(buys, rng.lognormal(4.0, 0.8, n), 0.0)
    discount = paid / 9 if treated else np.zeros(n)
    return 0.3 * (paid + discount) - discount, discount


def test_ratio_of_differences_is_the_roi_with_the_delta_method_variance() -> None:
    rng = np.random.default_rng(5)
    (net_t, d_t), (net_c, d_c) = _roi_per_user(rng, 3000, True), _roi_per_user(rng, 1000, False)
    e = ratio_of_differences(PairMoments.of(net_t, d_t), PairMoments.of(net_c, d_c))
    assert e is not None
    roi = (net_t.mean() - net_c.mean()) / (d_t.mean() - d_c.mean())
    assert e.value == pytest.approx(roi)
    # Delta method written out: gradient (1/dx, -r/dx) against the covariance of the two means.
    cov = np.cov(net_t, d_t) / len(net_t) + np.cov(net_c, d_c) / len(net_c)
    gradient = np.array([1.0, -roi]) / (d_t.mean() - d_c.mean())
    se = math.sqrt(gradient @ cov @ gradient)
    assert e.high - e.value == pytest.approx(stats.norm.ppf(0.975) * se, rel=1e-6)
    assert e.value - e.low == pytest.approx(e.high - e.value)


def test_roi_interval_covers_the_true_roi_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(8)
    big = [_roi_per_user(rng, 400_000, treated) for treated in (True, False)]
    true_roi = (big[0][0].mean() - big[1][0].mean()) / (big[0][1].mean() - big[1][1].mean())
    covered = []
    for _ in range(400):
        (nt, dt), (nc, dc) = _roi_per_user(rng, 2000, True), _roi_per_user(rng, 2000, False)
        e = ratio_of_differences(PairMoments.of(nt, dt), PairMoments.of(nc, dc))
        assert e is not None
        covered.append(e.low <= true_roi <= e.high)
    assert np.mean(covered) == pytest.approx(0.95, abs=0.035)


def test_roi_is_not_estimable_while_the_extra_discount_is_indistinguishable_from_zero() -> None:
    t = PairMoments.of([10.0, 0.0, 5.0, 0.0], [5.0, 0.0, 0.0, 0.0])
    c = PairMoments.of([2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0])
    assert ratio_of_differences(t, c) is None
    assert ratio_of_differences(t, PairMoments.of([1.0], [0.0])) is None  # one control user


@given(samples, samples, samples, margins)
# Most random draws give an extra discount whose interval spans 0 (ROI not estimable, by
# design): the filtering is the point, not a slow generator.
@settings(suppress_health_check=[HealthCheck.filter_too_much])
def test_roi_is_net_margin_gained_per_unit_of_extra_discount(
    revenue_t: list[float], discount_t: list[float], revenue_c: list[float], margin: float
) -> None:
    """From raw per-user figures: ROI = (Δ gross margin - Δ discount) / Δ discount."""
    n = min(len(revenue_t), len(discount_t))
    revenue, discount = np.array(revenue_t[:n]), np.array(discount_t[:n])
    assume(discount.mean() > 1e-3)
    net_t = margin * (revenue + discount) - discount
    net_c = margin * np.array(revenue_c)
    e = ratio_of_differences(
        PairMoments.of(net_t, discount), PairMoments.of(net_c, np.zeros(len(net_c)))
    )
    assume(e is not None)
    assert e is not None
    extra = float(discount.mean())
    gross = margin * (float((revenue + discount).mean()) - float(np.mean(revenue_c)))
    assert e.value == pytest.approx((gross - extra) / extra, rel=1e-9, abs=1e-9)


# --- CUPED -------------------------------------------------------------------------------------


@given(pairs, pairs)
def test_cuped_matches_an_adjustment_from_scratch(
    t: list[tuple[float, float]], c: list[tuple[float, float]]
) -> None:
    yt, xt = np.array([y for y, _ in t]), np.array([x for _, x in t])
    yc, xc = np.array([y for y, _ in c]), np.array([x for _, x in c])
    x, y = np.concatenate([xt, xc]), np.concatenate([yt, yc])
    assume(spread_is_resolvable(list(x)) and spread_is_resolvable(list(y)))
    theta = np.cov(y, x)[0, 1] / np.var(x, ddof=1)
    adjusted_t, adjusted_c = yt - theta * xt, yc - theta * xc
    assume(spread_is_resolvable(list(adjusted_t)) and spread_is_resolvable(list(adjusted_c)))
    e = cuped_difference(PairMoments.of(yt, xt), PairMoments.of(yc, xc))
    assert e.theta == pytest.approx(theta, rel=1e-6, abs=1e-9)
    welch = stats.ttest_ind(adjusted_t, adjusted_c, equal_var=False).confidence_interval(0.95)
    pooled = stats.ttest_ind(adjusted_t, adjusted_c, equal_var=True).confidence_interval(0.95)
    ci = welch if welch.high - welch.low >= pooled.high - pooled.low else pooled
    scale = 1 + float(np.abs(y).max())
    assert e.difference.value == pytest.approx(
        adjusted_t.mean() - adjusted_c.mean(), abs=1e-6 * scale
    )
    assert e.difference.low == pytest.approx(ci.low, rel=1e-4, abs=1e-4 * scale)
    assert e.difference.high == pytest.approx(ci.high, rel=1e-4, abs=1e-4 * scale)

    def pooled_se(a: np.ndarray, b: np.ndarray) -> float:
        n, m = len(a), len(b)
        var = ((n - 1) * np.var(a, ddof=1) + (m - 1) * np.var(b, ddof=1)) / (n + m - 2)
        welch = math.sqrt(np.var(a, ddof=1) / n + np.var(b, ddof=1) / m)
        return max(welch, math.sqrt(var * (1 / n + 1 / m)))

    se, raw = pooled_se(adjusted_t, adjusted_c), pooled_se(yt, yc)
    if raw == 0:  # each arm constant: no raw variance to reduce
        assert math.isnan(e.variance_reduction)
    else:
        assert e.variance_reduction == pytest.approx(1 - se**2 / raw**2, rel=1e-4, abs=1e-4)


def test_cuped_without_a_varying_covariate_is_the_raw_difference() -> None:
    t, c = Moments.of([3.0, 5.0, 7.0]), Moments.of([1.0, 2.0, 3.0])
    for constant in (0.0, 0.1):
        e = cuped_difference(
            PairMoments.of([3.0, 5.0, 7.0], [constant] * 3),
            PairMoments.of([1.0, 2.0, 3.0], [constant] * 3),
        )
        assert e.theta == 0.0
        assert e.difference == mean_difference(t, c)
        assert e.variance_reduction == 0.0
    assert cuped_theta(PairMoments.of([], []), PairMoments.of([1.0], [2.0])) == 0.0
    assert cuped_adjusted(PairMoments.of([1.0, 2.0], [0.0, 0.0]), 5.0) == Moments.of([1.0, 2.0])


def _experiment(
    rng: np.random.Generator, n: int, effect: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Profit after the first decision tracks the profit before it; treated users gain
    ``effect``. Returns (y, pre-period x, post-period x, treated)."""
    treated = rng.random(n) < 0.9
    before = rng.gamma(0.5, 60.0, n)
    after = 0.8 * before + rng.normal(0.0, 40.0, n) + effect * treated
    later_purchases = np.maximum(after, 0.0) + rng.gamma(0.5, 10.0, n)  # leaks the effect
    return after, before, later_purchases, treated


def _cuped(y: np.ndarray, x: np.ndarray, treated: np.ndarray) -> float:
    e = cuped_difference(
        PairMoments.of(y[treated], x[treated]), PairMoments.of(y[~treated], x[~treated])
    )
    return e.difference.value


def test_cuped_with_a_pre_period_covariate_is_unbiased_and_tighter() -> None:
    rng = np.random.default_rng(13)
    effect, runs = 5.0, [_experiment(rng, 3000, 5.0) for _ in range(300)]
    raw = [y[t].mean() - y[~t].mean() for y, _, _, t in runs]
    cuped = [_cuped(y, pre, t) for y, pre, _, t in runs]
    assert np.mean(cuped) == pytest.approx(effect, abs=3 * np.std(cuped) / math.sqrt(300))
    assert np.var(cuped) < 0.75 * np.var(raw)  # corr(before, after)² is about 0.36 here
    # A covariate measured after treatment absorbs the effect: the guarantee is the pre-period.
    leaky = [_cuped(y, post, t) for y, _, post, t in runs]
    assert np.mean(leaky) < effect / 2


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

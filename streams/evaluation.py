"""Evaluation maths: treatment against control, and the value of a policy from logged decisions.

Inputs are the aggregates the ClickHouse views return (counts, sums, sums of squares), so
nothing here needs the rows. Conventions, shared with ``promo.report``:

- *revenue* of a decision is what the customer paid for the purchases attributed to it
  (``order_total``, after any coupon); *discount* is what the coupon took off.
- *gross margin* is earned on revenue before discounts: ``m * (revenue + discount)``, where
  ``m`` is the margin rate (``PROMO_GROSS_MARGIN``).
- *net margin* of a decision is that gross margin minus the discount:
  ``m * (revenue + discount) - discount``.
- *ROI of the promotion*, from per-decision means of treatment (T) and control (C)::

      ROI = (incremental gross margin - incremental discount cost) / incremental discount cost
          = (m * ((R_T + D_T) - (R_C + D_C)) - (D_T - D_C)) / (D_T - D_C)

  i.e. net margin gained per unit of discount given; ``0`` breaks even, ``-1`` means the
  discounts bought no extra margin at all.

>>> a = proportion_difference(60, 1000, 40, 1000)
>>> round(a.value, 3), round(a.low, 4), round(a.high, 4)
(0.02, 0.0008, 0.0395)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its confidence interval (``nan`` bounds when not computable)."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}]"


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of a per-decision figure: enough for mean and variance.

    >>> m = Moments.of([1.0, 2.0, 6.0])
    >>> m.mean, m.variance
    (3.0, 7.0)
    """

    n: int
    total: float
    total_sq: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Moments:
        x = np.asarray(values, dtype=float)
        return cls(len(x), float(x.sum()), float((x * x).sum()))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else _NAN

    @property
    def variance(self) -> float:
        """Sample variance (n - 1); clamped at 0 against rounding in ``total_sq - n * mean²``."""
        if self.n < 2:
            return _NAN
        return max(0.0, (self.total_sq - self.total * self.total / self.n) / (self.n - 1))


def net_margin_moments(
    n: int,
    sum_revenue: float,
    sum_revenue_sq: float,
    sum_discount: float,
    sum_discount_sq: float,
    sum_revenue_discount: float,
    gross_margin: float,
) -> Moments:
    """Moments of ``m * (revenue + discount) - discount`` per decision from the views' sums.

    With ``y = a * revenue + b * discount`` (``a = m``, ``b = m - 1``), the sum of ``y²`` is
    ``a² Σr² + 2ab Σrd + b² Σd²``, so one view serves every margin.

    >>> m = net_margin_moments(2, 100.0, 10_000.0, 10.0, 100.0, 1000.0, gross_margin=0.3)
    >>> round(m.total, 6), round(m.total_sq, 6)
    (23.0, 529.0)
    """
    a, b = gross_margin, gross_margin - 1.0
    total = a * sum_revenue + b * sum_discount
    total_sq = a * a * sum_revenue_sq + 2 * a * b * sum_revenue_discount + b * b * sum_discount_sq
    return Moments(n, total, max(0.0, total_sq))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Share ``successes / n`` with its Wilson score interval (good near 0 and 1).

    >>> e = wilson_interval(0, 10)
    >>> e.value, round(e.low, 4), round(e.high, 4)
    (0.0, 0.0, 0.2775)
    """
    if n <= 0:
        return Estimate(_NAN, _NAN, _NAN)
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def proportion_difference(
    successes_t: int, n_t: int, successes_c: int, n_c: int, confidence: float = 0.95
) -> Estimate:
    """Difference of two shares (treatment - control) with Newcombe's hybrid score interval.

    Newcombe (1998, method 10) combines the two Wilson intervals; unlike the Wald interval it
    stays inside [-1, 1] and keeps its coverage when a group has few or no conversions.
    """
    if n_t <= 0 or n_c <= 0:
        return Estimate(_NAN, _NAN, _NAN)
    t = wilson_interval(successes_t, n_t, confidence)
    c = wilson_interval(successes_c, n_c, confidence)
    diff = t.value - c.value
    low = diff - math.hypot(t.value - t.low, c.high - c.value)
    high = diff + math.hypot(t.high - t.value, c.value - c.low)
    return Estimate(diff, max(-1.0, low), min(1.0, high))  # clamp rounding at the edges


def mean_difference(treatment: Moments, control: Moments, confidence: float = 0.95) -> Estimate:
    """Difference of means (treatment - control) with Welch's interval (unequal variances).

    >>> e = mean_difference(Moments.of([3.0, 5.0, 7.0]), Moments.of([1.0, 2.0, 3.0]))
    >>> round(e.value, 4), round(e.low, 2), round(e.high, 2)
    (3.0, -1.16, 7.16)
    """
    diff = treatment.mean - control.mean
    if treatment.n < 2 or control.n < 2:
        return Estimate(diff, _NAN, _NAN)
    var_t = treatment.variance / treatment.n
    var_c = control.variance / control.n
    se2 = var_t + var_c
    if se2 == 0.0:
        return Estimate(diff, diff, diff)
    df = se2 * se2 / (var_t * var_t / (treatment.n - 1) + var_c * var_c / (control.n - 1))
    half = student_t_quantile(0.5 + confidence / 2, df) * math.sqrt(se2)
    return Estimate(diff, diff - half, diff + half)


def mean_interval(moments: Moments, confidence: float = 0.95) -> Estimate:
    """Mean with its Student t interval.

    >>> e = mean_interval(Moments.of([1.0, 2.0, 3.0]))
    >>> e.value, round(e.low, 4), round(e.high, 4)
    (2.0, -0.4841, 4.4841)
    """
    mean = moments.mean
    if moments.n < 2:
        return Estimate(mean, _NAN, _NAN)
    half = student_t_quantile(0.5 + confidence / 2, moments.n - 1) * math.sqrt(
        moments.variance / moments.n
    )
    return Estimate(mean, mean - half, mean + half)


def relative_uplift(treatment: float, control: float) -> float:
    """``treatment / control - 1``: +0.25 means a quarter more; ``nan`` when control is 0.

    >>> relative_uplift(0.05, 0.04)
    0.25
    """
    return treatment / control - 1.0 if control != 0 else _NAN


def promotion_roi(
    revenue_t: float,
    discount_t: float,
    revenue_c: float,
    discount_c: float,
    gross_margin: float,
) -> float:
    """ROI of the promotion from per-decision means (formula in the module docstring).

    ``nan`` when treatment gave no more discount than control: there is no investment.

    >>> round(promotion_roi(30.0, 2.0, 25.0, 0.0, gross_margin=0.3), 4)
    0.05
    """
    extra_discount = discount_t - discount_c
    if extra_discount <= 0:
        return _NAN
    extra_gross = gross_margin * ((revenue_t + discount_t) - (revenue_c + discount_c))
    return (extra_gross - extra_discount) / extra_discount


@dataclass(frozen=True, slots=True)
class PolicyValue:
    """Off-policy estimate of a target policy's mean reward per decision.

    ``ips`` is unbiased (interval from the normal approximation); ``snips`` divides by the
    sum of weights instead of n: slightly biased, much less variable. A small
    ``effective_sample_size`` (``(Σw)² / Σw²``) says the logs rarely took the target's actions.
    """

    n: int
    ips: Estimate
    snips: float
    effective_sample_size: float


def policy_value(
    propensities: Sequence[float],
    rewards: Sequence[float],
    target_probs: Sequence[float],
    confidence: float = 0.95,
) -> PolicyValue:
    """Value of a target policy from logged decisions, by inverse propensity scoring.

    For each logged decision: ``propensities[i]`` is the probability with which the logging
    policy took its action, ``target_probs[i]`` the probability the target policy would
    take that same action in that context, ``rewards[i]`` what followed (e.g. net margin).

    >>> v = policy_value([0.5, 0.5, 0.9, 0.1], [1.0, 0.0, 2.0, 4.0], [1.0, 0.0, 1.0, 1.0])
    >>> round(v.ips.value, 4), round(v.snips, 4), round(v.effective_sample_size, 3)
    (11.0556, 3.3729, 1.634)
    """
    p = np.asarray(propensities, dtype=float)
    r = np.asarray(rewards, dtype=float)
    pi = np.asarray(target_probs, dtype=float)
    if not p.shape == r.shape == pi.shape or p.ndim != 1:
        raise ValueError("propensities, rewards and target_probs must be 1-D and of one length")
    n = len(p)
    if n == 0:
        return PolicyValue(0, Estimate(_NAN, _NAN, _NAN), _NAN, 0.0)
    if np.any(p <= 0) or np.any(p > 1) or np.any(pi < 0) or np.any(pi > 1):
        raise ValueError("propensities must be in (0, 1] and target_probs in [0, 1]")
    w = pi / p
    wr = w * r
    ips = float(wr.mean())
    half = _z(confidence) * float(wr.std(ddof=1)) / math.sqrt(n) if n > 1 else _NAN
    w_sum = float(w.sum())
    snips = float(wr.sum()) / w_sum if w_sum > 0 else _NAN
    w_sq_sum = float((w * w).sum())
    ess = w_sum * w_sum / w_sq_sum if w_sq_sum > 0 else 0.0
    return PolicyValue(n, Estimate(ips, ips - half, ips + half), snips, ess)


def deterministic_target_probs(
    logged_actions: Sequence[str], target_actions: Sequence[str]
) -> list[float]:
    """``target_probs`` for a policy that always takes ``target_actions[i]``: 1 where it agrees.

    >>> deterministic_target_probs(["none", "pct10"], ["pct10", "pct10"])
    [0.0, 1.0]
    """
    if len(logged_actions) != len(target_actions):
        raise ValueError("logged_actions and target_actions must be of one length")
    return [1.0 if a == b else 0.0 for a, b in zip(logged_actions, target_actions, strict=True)]


def student_t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with ``df`` (possibly fractional) degrees of freedom.

    Bisection on the exact distribution function: accurate to ~1e-12, no SciPy needed.

    >>> round(student_t_quantile(0.975, 10), 6), round(student_t_quantile(0.975, 1), 4)
    (2.228139, 12.7062)
    """
    if not 0 < p < 1 or df <= 0:
        raise ValueError("need 0 < p < 1 and df > 0")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    if df > 1e7:
        return NormalDist().inv_cdf(p)
    low, high = 0.0, 1.0
    while _student_t_cdf(high, df) < p:
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if _student_t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2


def _student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for t >= 0, from the regularised incomplete beta function."""
    x = df / (df + t * t)
    return 1.0 - 0.5 * _incomplete_beta(df / 2, 0.5, x)


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (continued fraction, Numerical Recipes §6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2)

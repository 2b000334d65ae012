"""Fairness between groups of users: who is offered promotions, and the alert on the gap.

The report compares, per way of grouping decisions (k-means segment, rule segment, new vs
returning, the platform's optional group: each decision in the groups it was logged with),
each group's offer rate (offers sent per treated decision), discount per treated decision and
conversion per decision, treatment - control. This module holds their intervals and the alert:
a group is flagged when the highest offer rate of its grouping is more than ``max_ratio``
times its own (``PROMO_FAIRNESS_MAX_RATIO``). The default, 1.25, is the four-fifths rule of US
employment law turned around: a group offered at under 80 % of the most-offered group's rate.
A flag whose ratio stays beyond ``max_ratio`` even between the facing ends of the two rates'
95 % intervals (the highest's lower bound over this group's upper bound) is *clear*: not the
noise of a small group.

**The user is the unit.** One user's decisions are not independent (the same person, the
same caps, the policy's view of them), so a rate over decisions is a ratio of two sums over
users, and its interval comes from how the users' own ratios spread (``ClusteredRatio``): a
group of three heavy users has three observations, not three thousand.

**Placeholders take no part.** A group that says nothing was logged (``''``: decisions before
rule segments and groups existed, or users the platform sent no group for) is shown but is
neither flagged nor the reference that others are compared with.

Targeting is the policy's job, so groups defined by behaviour (segments) are expected to
differ; the alert says where to look, not that something is wrong.

>>> a = OfferRate("a", ClusteredRatio.independent(300, 1000))
>>> b = OfferRate("b", ClusteredRatio.independent(100, 1000))
>>> few = OfferRate("c", ClusteredRatio.independent(2, 8))
>>> [(d.group, round(d.ratio, 2), d.flagged, d.clear)
...  for d in offer_rate_disparities([a, b, few], 1.25)]
[('a', 1.0, False, False), ('b', 3.0, True, True), ('c', 1.2, False, False)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streams.evaluation import Estimate, normal_quantile, student_t_quantile, wilson_interval

#: Offer-rate ratio (highest group / this group) beyond which a group is flagged.
DEFAULT_MAX_RATIO = 1.25
#: The group name of decisions that logged none (before migration 0010, or no group sent).
PLACEHOLDER = ""

_NAN = math.nan


@dataclass(frozen=True, slots=True)
class ClusteredRatio:
    """``y / x`` summed over a group's users, from per-user sums: ``users`` users with totals
    ``y`` and ``x``, and the sums over users of ``y_i**2``, ``x_i**2`` and ``y_i * x_i``
    (``v_by_group``'s ``sum_user_*`` columns).

    Its variance is the delta method's (linearisation) with the user as the unit:
    ``sum((y_i - r x_i)**2) / (n - 1) / (n * mean(x)**2)``, the ratio estimator of survey
    sampling. Not computable (``nan``) with fewer than two users.

    >>> heavy = ClusteredRatio(2, y=100, x=1000, yy=100**2, xx=2 * 500**2, xy=100 * 500)
    >>> round(heavy.value, 3), round(math.sqrt(heavy.variance()), 3)
    (0.1, 0.1)
    """

    users: int
    y: float
    x: float
    yy: float
    xx: float
    xy: float

    @classmethod
    def independent(cls, y: float, x: int) -> ClusteredRatio:
        """``x`` users of one decision each (``y`` of them offered): the unclustered case."""
        return cls(x, y, x, y, x, y)

    @property
    def value(self) -> float:
        return self.y / self.x if self.x > 0 else _NAN

    def variance(self) -> float:
        n = self.users
        if n < 2 or self.x <= 0:
            return _NAN
        r = self.y / self.x
        spread = (self.yy - 2 * r * self.xy + r * r * self.xx) / (n - 1)
        return max(spread, 0.0) / (n * (self.x / n) ** 2)

    def interval(self, confidence: float = 0.95) -> Estimate:
        """Student's t interval (``users - 1`` degrees of freedom: a few users are a few
        observations) on the delta-method variance, for unbounded means (discount)."""
        if self.users < 2:
            return Estimate(self.value, _NAN, _NAN)
        half = _t(confidence, self.users - 1) * math.sqrt(self.variance())
        return Estimate(self.value, self.value - half, self.value + half)

    def share_interval(self, confidence: float = 0.95) -> Estimate:
        """For a share in [0, 1] (offers per decision): Wilson's interval on the effective
        number of decisions, ``r (1 - r) / variance`` (at most the decisions), so that it
        stays in [0, 1] and keeps its width near 0 and 1. Where the users do not differ at
        all (every one offered nothing, say) the variance says nothing, and the effective
        number is Kish's count of users weighted by their decisions, ``x**2 / sum(x_i**2)``:
        three heavy users are about three observations."""
        if self.x <= 0:
            return Estimate(_NAN, _NAN, _NAN)
        r, variance = self.value, self.variance()
        if variance > 0:
            effective = min(self.x, r * (1 - r) / variance)
        else:  # no spread between users, or a single user
            effective = self.x * self.x / self.xx if self.xx > 0 else 0.0
        if self.users >= 2:
            # Few users: Student's t with users - 1 degrees of freedom instead of z, applied
            # as fewer effective decisions ((z / t)**2 of them: the same width at the centre).
            effective *= (normal_quantile(confidence) / _t(confidence, self.users - 1)) ** 2
        e = wilson_interval(r * effective, effective, confidence)
        return Estimate(r, e.low, e.high)


def ratio_difference(t: ClusteredRatio, c: ClusteredRatio, confidence: float = 0.95) -> Estimate:
    """``t.value - c.value`` with a t interval on the sum of their clustered variances (the
    arms are independent samples of users), on the smaller arm's users - 1 degrees of freedom
    (conservative beside Welch's); ``nan`` bounds with under two users in an arm."""
    value = t.value - c.value
    if min(t.users, c.users) < 2:
        return Estimate(value, _NAN, _NAN)
    half = _t(confidence, min(t.users, c.users) - 1) * math.sqrt(t.variance() + c.variance())
    return Estimate(value, value - half, value + half)


def _t(confidence: float, df: int) -> float:
    return student_t_quantile(0.5 + confidence / 2, df)


@dataclass(frozen=True, slots=True)
class OfferRate:
    """Offers sent (``y``) over the treated decisions (``x``) of one group, per user."""

    group: str
    offers: ClusteredRatio

    def estimate(self) -> Estimate:
        return self.offers.share_interval()


@dataclass(frozen=True, slots=True)
class Disparity:
    """One group's offer rate against the most-offered group of its grouping."""

    group: str
    rate: Estimate
    #: The highest rate over this group's: 1 for the most-offered group, ``inf`` for a group
    #: offered nothing while another was, ``nan`` when no group was offered anything.
    ratio: float
    flagged: bool
    #: Beyond ``max_ratio`` even between the facing ends of the two 95 % intervals.
    clear: bool


def offer_rate_disparities(rates: Sequence[OfferRate], max_ratio: float) -> list[Disparity]:
    """Each group with treated decisions, in the order given, with its ratio and flags;
    the placeholder group (``PLACEHOLDER``) is left out: it is no group of users.

    >>> one = OfferRate("a", ClusteredRatio.independent(0, 5))
    >>> [d.ratio for d in offer_rate_disparities([one], 1.25)]
    [nan]
    >>> rates = [OfferRate("a", ClusteredRatio.independent(5, 10)),
    ...          OfferRate("b", ClusteredRatio.independent(0, 40))]
    >>> d = offer_rate_disparities(rates, 1.25)[1]
    >>> d.ratio, d.flagged, d.clear
    (inf, True, True)
    """
    if not max_ratio > 1:
        raise ValueError(f"max_ratio must be above 1, got {max_ratio}")
    estimates = [
        (r.group, r.estimate()) for r in rates if r.offers.x > 0 and r.group != PLACEHOLDER
    ]
    if not estimates:
        return []
    top = max(estimates, key=lambda ge: ge[1].value)[1]
    disparities = []
    for group, rate in estimates:
        ratio = _ratio(top.value, rate.value)
        clear = _ratio(top.low, rate.high) > max_ratio
        disparities.append(Disparity(group, rate, ratio, ratio > max_ratio, clear))
    return disparities


def _ratio(top: float, rate: float) -> float:
    if top <= 0:
        return _NAN
    return top / rate if rate > 0 else math.inf

"""Fairness between groups of users: who is offered promotions, and the alert on the gap.

The report compares, per way of grouping users (k-means segment, rule segment, new vs
returning, the platform's optional group), each group's offer rate (offers sent per treated
decision), discount per treated user and the per-user effect (treatment - control, the
headline's maths). This module holds the alert: a group is flagged when the highest offer
rate of its grouping is more than ``max_ratio`` times its own (``PROMO_FAIRNESS_MAX_RATIO``).
The default, 1.25, is the four-fifths rule of US employment law turned around: a group offered
at under 80 % of the most-offered group's rate. A flag whose ratio stays beyond ``max_ratio``
even between the facing ends of the two rates' 95 % intervals (the highest's lower bound over
this group's upper bound) is *clear*: not the noise of a small group.

Targeting is the policy's job, so groups defined by behaviour (segments) are expected to
differ; the alert says where to look, not that something is wrong.

>>> flags = offer_rate_disparities(
...     [OfferRate("a", 300, 1000), OfferRate("b", 100, 1000), OfferRate("c", 2, 8)], 1.25)
>>> [(d.group, round(d.ratio, 2), d.flagged, d.clear) for d in flags]
[('a', 1.0, False, False), ('b', 3.0, True, True), ('c', 1.2, False, False)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from streams.evaluation import Estimate, wilson_interval

#: Offer-rate ratio (highest group / this group) beyond which a group is flagged.
DEFAULT_MAX_RATIO = 1.25


@dataclass(frozen=True, slots=True)
class OfferRate:
    """Offers sent over the treated decisions of one group."""

    group: str
    offers: int
    decisions: int

    def estimate(self) -> Estimate:
        return wilson_interval(self.offers, self.decisions)


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
    """Each group with treated decisions, in the order given, with its ratio and flags.

    >>> [d.ratio for d in offer_rate_disparities([OfferRate("a", 0, 5)], 1.25)]
    [nan]
    >>> d = offer_rate_disparities([OfferRate("a", 5, 10), OfferRate("b", 0, 40)], 1.25)[1]
    >>> d.ratio, d.flagged, d.clear
    (inf, True, True)
    """
    if not max_ratio > 1:
        raise ValueError(f"max_ratio must be above 1, got {max_ratio}")
    estimates = [(r.group, r.estimate()) for r in rates if r.decisions > 0]
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
        return math.nan
    return top / rate if rate > 0 else math.inf

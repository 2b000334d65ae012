"""Which offer to send, if any, and with what probability: the decision policy.

Policy ``uplift-lcb-v7`` targets *incremental* profit: for each offer a,

    gain(a) = P(buy | a) * (margin * order value - expected discount of a)
              - P(buy | none) * margin * order value

where the expected discount is the offer's cost times the share of its buyers who redeem it
(only redeemed purchases cost anything; a bundle discount that rarely applies is rarely
paid), the order value is what users like this one finally bought
(``streams.order_value``), not the cart, and the margin is a rate: the cart's own where its
lines carry per-item margins, else the shop's global rate (``streams.engine`` passes it).
The uplift model (``streams.uplift``) gives a posterior for every offer's effect, so the
policy can ask how sure it is:

- **serve**: send the offer with the highest *lower* confidence bound on gain, and only if
  that bound is positive (``z`` standard deviations of the effect's posterior). Where there
  is no evidence the bound is negative and nothing is sent: no coupon "just in case".
- **explore** (a sticky, hash-based cohort of users): while some offer might pay (*upper*
  bound on gain positive) and its effect is still uncertain (posterior sd above
  ``EXPLORE_UNTIL_SD``), the action is drawn by Thompson sampling: each action with the
  probability that it is the best, its effect drawn from the posterior
  (``thompson_probabilities``); that probability is logged. An offer that probably loses is
  explored rarely, and ever more rarely as its decisions confirm it, where a uniform draw
  kept sending it until its interval was narrow (on the default shop, offers explored on
  regular buyers cost 4-6 of profit each, most of them to users whom contact puts off).
  Once every offer is known well enough the cohort is served like everyone else: the
  exploration budget is a precision to reach, not a share of traffic given away forever.

Randomness comes from a hash of the decision id, not from a generator: a redelivered event
re-derives the same decision.

>>> from streams.catalogue import DEFAULT_CATALOGUE
>>> from streams.uplift import Belief
>>> offers = ("pct10", "pct20", "free_shipping", "bundle15")
>>> sure = Belief(0.1, dict.fromkeys(offers, 1.5), dict.fromkeys(offers, 0.01))
>>> rates = dict.fromkeys(offers, 0.9)
>>> choice = choose_offer(sure, order_value=80.0, catalogue=DEFAULT_CATALOGUE, gross_margin=0.3,
...                       redemption_rates=rates, z=1.0, explore=False, draw=0.5)
>>> choice.action, choice.propensity, choice.scores["pct10"] > 0
('free_shipping', 1.0, True)
>>> unsure = Belief(0.1, sure.effect_mean, dict.fromkeys(offers, 4.0))
>>> choose_offer(unsure, order_value=80.0, catalogue=DEFAULT_CATALOGUE, gross_margin=0.3,
...              redemption_rates=rates, z=1.0, explore=False, draw=0.5).action
'none'
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from schemas.decisions import NO_OFFER
from streams.catalogue import OfferSpec
from streams.uplift import Belief, logit, sigmoid

_UNIT = float(1 << 64)
_NORMAL = NormalDist()
#: Gauss-Legendre nodes and weights on [0, 1]: Thompson sampling's probabilities by quadrature.
_LEGENDRE = [
    (float(x + 1.0) / 2.0, float(w) / 2.0)
    for x, w in zip(*np.polynomial.legendre.leggauss(16), strict=True)
]
#: An offer is explored for users like this one only while its effect is this uncertain
#: (posterior sd, log-odds): the exploration budget is a precision, not a share forever.
EXPLORE_UNTIL_SD = 0.3


def unit_hash(*parts: str) -> float:
    """A uniform number in [0, 1) fixed by ``parts``.

    >>> unit_hash("u1", "salt") == unit_hash("u1", "salt")
    True
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _UNIT


def in_control_group(user_id: str, *, salt: str, share: float) -> bool:
    """Sticky holdout: the same user is always in (or out of) control for a given salt."""
    return unit_hash("holdout", salt, user_id) < share


def in_explore_cohort(user_id: str, *, salt: str, share: float) -> bool:
    """Sticky exploration cohort, drawn independently of the holdout (another hash)."""
    return unit_hash("explore", salt, user_id) < share


@dataclass(frozen=True, slots=True)
class ContactLimits:
    cooldown_ms: int
    max_per_day: int
    max_per_week: int
    max_open_decisions: int = 12


def ineligibility(
    now: int,
    *,
    last_decision: int,
    offer_times: list[int],
    open_decisions: int,
    limits: ContactLimits,
) -> str | None:
    """Why no decision may be taken now, or None. Applies to control users alike, so that
    control and treatment decisions are taken under the same conditions."""
    if last_decision >= 0 and now - last_decision < limits.cooldown_ms:
        return "cooldown"
    if open_decisions >= limits.max_open_decisions:
        return "open_decisions"
    day_ago, week_ago = now - 86_400_000, now - 7 * 86_400_000
    if sum(1 for t in offer_times if t > day_ago) >= limits.max_per_day:
        return "daily_cap"
    if sum(1 for t in offer_times if t > week_ago) >= limits.max_per_week:
        return "weekly_cap"
    return None


@dataclass(frozen=True, slots=True)
class Choice:
    """What the policy chose, with the probability it had of choosing it."""

    action: str
    propensity: float
    #: Expected incremental profit of each action against ``none`` (posterior mean).
    scores: dict[str, float]
    purchase_probs: dict[str, float]
    explored: bool = False
    #: The probability of every action the policy might have taken here (those above 0);
    #: empty means ``{action: propensity}``.
    probabilities: dict[str, float] = field(default_factory=dict)

    def action_probabilities(self) -> dict[str, float]:
        return self.probabilities or {self.action: self.propensity}


def choose_offer(
    belief: Belief,
    *,
    order_value: float,
    catalogue: tuple[OfferSpec, ...],
    gross_margin: float,
    redemption_rates: Mapping[str, float],
    z: float,
    explore: bool,
    draw: float,
    scopes: Mapping[str, float] | None = None,
) -> Choice:
    """The serving or exploring choice for one decision; ``draw`` is uniform in [0, 1).
    ``scopes``: the share of the order each category offer's discount applies to (an offer
    not named applies to the whole order)."""
    p_none = belief.purchase_probability(NO_OFFER)
    value = gross_margin * order_value
    baseline = p_none * value
    scores, probs = {NO_OFFER: 0.0}, {NO_OFFER: round(p_none, 6)}
    lows: dict[str, float] = {}
    nets: dict[str, float] = {}
    uncertain = []
    for offer in catalogue:
        code = offer.code
        scope = 1.0 if scopes is None else scopes.get(code, 1.0)
        net = nets[code] = value - redemption_rates[code] * offer.cost(order_value, scope)
        p = belief.purchase_probability(code)
        bounds = (
            belief.purchase_probability(code, -z) * net - baseline,
            belief.purchase_probability(code, z) * net - baseline,
        )
        scores[code], probs[code] = round(p * net - baseline, 6), round(p, 6)
        lows[code] = min(bounds)
        if max(bounds) > 0 and belief.effect_var[code] > EXPLORE_UNTIL_SD**2:
            uncertain.append(code)
    best = max(lows, key=lambda a: lows[a], default=NO_OFFER)
    greedy = best if lows.get(best, 0.0) > 0 else NO_OFFER
    if not explore or not any(a != greedy for a in uncertain):
        return Choice(greedy, 1.0, scores, probs)
    shares = thompson_probabilities(belief, nets, baseline)
    action = _draw_from(shares, draw)
    return Choice(action, shares[action], scores, probs, explored=True, probabilities=shares)


def thompson_probabilities(
    belief: Belief, nets: Mapping[str, float], baseline: float
) -> dict[str, float]:
    """Thompson sampling's probability of each action: the chance that its gain, with the
    offers' effects drawn from their posteriors, is the highest (``none`` gains 0). ``nets``:
    each offer's margin on a purchase after its expected discount; ``baseline``: the expected
    margin with no offer, P(buy | none) times the margin on a purchase.

    An offer's gain rises with its effect, so P(offer a wins) is the integral, over a's effect
    above its break-even, of the chance that every other offer's gain stays below a's:
    computed by quadrature over a's posterior quantiles rather than sampled, so that the
    probability logged is the one the draw used. Effects are taken as independent.

    >>> b = Belief(0.1, {"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 1.0})
    >>> p = thompson_probabilities(b, {"a": 20.0, "b": 20.0}, 0.1 * 24.0)
    >>> round(p["a"], 3) == round(p["b"], 3), round(sum(p.values()), 6)
    (True, 1.0)
    >>> sure = Belief(0.1, {"a": 0.0}, {"a": 1e-6})  # surely no effect: the coupon only costs
    >>> thompson_probabilities(sure, {"a": 20.0}, 0.1 * 24.0)["none"]
    1.0
    """
    base_logit = logit(belief.baseline)
    offers = {  # an offer that loses its margin to the discount never wins: left out
        a: (belief.effect_mean[a], max(math.sqrt(belief.effect_var[a]), 1e-9), net)
        for a, net in nets.items()
        if net > 0
    }

    def below(action: str, gain: float) -> float:
        """P(the action's gain < gain)."""
        mean, sd, net = offers[action]
        p = (gain + baseline) / net
        if p <= 0.0:
            return 0.0
        if p >= 1.0:
            return 1.0
        return _NORMAL.cdf((logit(p) - base_logit - mean) / sd)

    shares = {NO_OFFER: math.prod(below(a, 0.0) for a in offers)}
    for a, (mean, sd, net) in offers.items():
        start = below(a, 0.0)  # a's posterior quantile at break-even: it wins only above
        total = 0.0
        for node, weight in _LEGENDRE:
            u = start + (1.0 - start) * node
            effect = mean + sd * _NORMAL.inv_cdf(min(max(u, 1e-12), 1.0 - 1e-12))
            gain = sigmoid(base_logit + effect) * net - baseline
            total += weight * math.prod(below(b, gain) for b in offers if b != a)
        shares[a] = (1.0 - start) * total
    norm = sum(shares.values())
    return {a: p / norm for a, p in shares.items() if p / norm > 0.0}


def _draw_from(shares: Mapping[str, float], draw: float) -> str:
    """The action whose slice of [0, 1) holds ``draw`` (slices in the mapping's order)."""
    edge = 0.0
    for action, p in shares.items():
        edge += p
        if draw < edge:
            return action
    return action

"""Which offer to send, if any, and with what probability: the decision policy.

Policy ``uplift-lcb-v4`` targets *incremental* profit: for each offer a,

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
- **explore** (a sticky, hash-based cohort of users): the candidates are the serving choice
  and every offer that might pay (*upper* bound on gain positive) and whose effect is still
  uncertain (posterior sd above ``EXPLORE_UNTIL_SD``). Half the draws take the candidate with
  the highest upper bound, half one of them uniformly; the propensity logged is exact. An
  offer surely unprofitable for users like this one is never explored, and once every offer
  is known well enough the cohort is served like everyone else: the exploration budget is a
  precision to reach, not a share of traffic given away forever.

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
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.decisions import NO_OFFER
from streams.catalogue import OfferSpec
from streams.uplift import Belief

_UNIT = float(1 << 64)
#: Share of exploring decisions that take the offer with the highest upper bound.
OPTIMISM = 0.5
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
) -> Choice:
    """The serving or exploring choice for one decision; ``draw`` is uniform in [0, 1)."""
    p_none = belief.purchase_probability(NO_OFFER)
    value = gross_margin * order_value
    baseline = p_none * value
    scores, probs = {NO_OFFER: 0.0}, {NO_OFFER: round(p_none, 6)}
    lows: dict[str, float] = {}
    highs: dict[str, float] = {NO_OFFER: 0.0}
    uncertain = []
    for offer in catalogue:
        code = offer.code
        net = value - redemption_rates[code] * offer.cost(order_value)
        p = belief.purchase_probability(code)
        bounds = (
            belief.purchase_probability(code, -z) * net - baseline,
            belief.purchase_probability(code, z) * net - baseline,
        )
        scores[code], probs[code] = round(p * net - baseline, 6), round(p, 6)
        lows[code], highs[code] = min(bounds), max(bounds)
        if highs[code] > 0 and belief.effect_var[code] > EXPLORE_UNTIL_SD**2:
            uncertain.append(code)
    best = max(lows, key=lambda a: lows[a], default=NO_OFFER)
    greedy = best if lows.get(best, 0.0) > 0 else NO_OFFER
    candidates = [greedy, *(a for a in uncertain if a != greedy)]
    if not explore or len(candidates) == 1:
        return Choice(greedy, 1.0, scores, probs)
    # Half the draws go to the most promising candidate (highest upper bound: optimism in
    # the face of uncertainty), half uniformly, so every candidate keeps a known probability.
    optimistic = max(candidates, key=lambda a: highs[a])
    k = len(candidates)
    if draw < OPTIMISM:
        action = optimistic
    else:
        action = candidates[min(int((draw - OPTIMISM) / (1.0 - OPTIMISM) * k), k - 1)]
    shares = {a: (1.0 - OPTIMISM) / k + (OPTIMISM if a == optimistic else 0.0) for a in candidates}
    return Choice(action, shares[action], scores, probs, explored=True, probabilities=shares)

"""Which offer to send, if any, and with what probability: the decision policy.

Policy ``greedy-profit-v1``: for each action a (``none`` or a catalogue offer) the expected
profit is ``P(purchase | user, a) * (margin * order value - cost of a)``; the policy takes the
best action, except that with probability ``epsilon`` it explores an action uniformly at
random. Comparing every offer with ``none`` on profit means an offer is sent only where the
model expects it to change behaviour by more than it costs. The probability of the action
taken is logged (``propensity``) so any other policy can be evaluated on the logs.

Randomness comes from a hash of the decision id, not from a generator: a redelivered event
re-derives the same decision.

>>> from streams.catalogue import DEFAULT_CATALOGUE
>>> probs = {"none": 0.10, "pct10": 0.20, "pct20": 0.21, "free_shipping": 0.12, "bundle15": 0.1}
>>> choice = choose_action(probs, order_value=80.0, catalogue=DEFAULT_CATALOGUE,
...                        gross_margin=0.3, epsilon=0.1, draw=0.5)
>>> choice.action, round(choice.propensity, 2), round(choice.scores["pct10"], 2)
('pct10', 0.92, 3.2)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schemas.decisions import NO_OFFER
from streams.catalogue import OfferSpec

_UNIT = float(1 << 64)


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
    action: str
    propensity: float
    greedy_action: str
    scores: dict[str, float]


def expected_profit(
    probability: float, offer: OfferSpec | None, order_value: float, gross_margin: float
) -> float:
    """Profit of one decision: chance of an order times what that order leaves after the offer."""
    cost = offer.cost(order_value) if offer is not None else 0.0
    return probability * (gross_margin * order_value - cost)


def choose_action(
    purchase_probs: dict[str, float],
    *,
    order_value: float,
    catalogue: tuple[OfferSpec, ...],
    gross_margin: float,
    epsilon: float,
    draw: float,
) -> Choice:
    """Epsilon-greedy on expected profit. ``draw`` is a uniform number in [0, 1).

    Ties go to ``none`` (then catalogue order): with an untrained model nothing is given away
    except by exploration.
    """
    offers = {o.code: o for o in catalogue}
    actions = [NO_OFFER, *offers]
    scores = {
        a: round(expected_profit(purchase_probs[a], offers.get(a), order_value, gross_margin), 6)
        for a in actions
    }
    greedy = max(actions, key=lambda a: scores[a])  # max keeps the first of equals
    k = len(actions)
    # Below epsilon, the same draw (rescaled) picks the action to explore.
    action = actions[min(int(draw / epsilon * k), k - 1)] if draw < epsilon else greedy
    propensity = epsilon / k + (1.0 - epsilon if action == greedy else 0.0)
    return Choice(action, propensity, greedy, scores)

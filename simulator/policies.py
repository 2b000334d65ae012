"""Policies to compare the learned one with: baselines, and two oracles that know the shop.

Each implements ``streams.engine.Policy`` and runs through the engine's own decision code,
so every policy meets the same decision points, contact caps and attribution:

- ``none``: never sends anything;
- ``random``: an action (``none`` included) uniformly at random at every decision point;
- ``propensity``: the classic targeting, the first catalogue offer to users the model finds
  likely to buy anyway (P(purchase | none) at least ``threshold``);
- ``oracle``: knows each user's latent traits and takes the action of highest true expected
  profit (``simulator.truth``): the ceiling no learner can reach;
- ``learned_ungated``, ``random_ungated``, ...: the policy with the abuse gate off
  (``streams.abuse``), to measure on the same shop what the gate saves;
- ``observable_oracle``: knows the simulator's *priors* but sees only what a shop sees of the
  user (sessions, orders and offer clicks so far, their basket): it weighs the response
  types by their posterior given that behaviour and takes the action of highest expected
  profit under it.
  The honest ceiling for a learner that only sees behaviour.
- ``cell_oracle`` (run only when named): knows the true mean profit of every action in each
  of the learner's cells (``streams.uplift.cell_of``) and takes the cell's best. The ceiling
  of a learner that decides per cell: what separates it from the observable oracle is what
  the cells cannot tell apart, what separates the learned policy from it is learning.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace

from schemas.decisions import NO_OFFER
from simulator.population import RESPONSE_PROFILES, Population, UserTraits
from simulator.shop import DAY_MS, Shop
from simulator.truth import action_truth
from streams.catalogue import OfferSpec
from streams.engine import DecisionContext
from streams.policy import Choice
from streams.uplift import cell_of

POLICY_NAMES = ("learned", "none", "random", "propensity", "observable_oracle", "oracle")
#: Run only when named (not in the default set): each policy above with the abuse gate off.
UNGATED = "_ungated"
VARIANT_NAMES = tuple(f"{name}{UNGATED}" for name in POLICY_NAMES if name != "none")
#: Run only when named: diagnostics, not baselines.
DIAGNOSTIC_NAMES = ("cell_oracle",)


def _choice(action: str, propensity: float = 1.0) -> Choice:
    return Choice(action, propensity, {}, {})


@dataclass(frozen=True, slots=True)
class RandomPolicy:
    """Uniform over ``actions`` that can be sent at the decision (``context.offers``)."""

    actions: tuple[str, ...]

    def choose(self, context: DecisionContext) -> Choice:
        actions = _available(self.actions, context)
        k = len(actions)
        return _choice(actions[min(int(context.draw * k), k - 1)], 1.0 / k)


@dataclass(frozen=True, slots=True)
class PropensityPolicy:
    offer: str
    threshold: float = 0.3

    def choose(self, context: DecisionContext) -> Choice:
        belief = context.models.response.belief(context.features, context.trigger)
        likely = belief.purchase_probability(NO_OFFER) >= self.threshold
        sendable = self.offer in _available((self.offer,), context)
        return _choice(self.offer if likely and sendable else NO_OFFER)


def _available(actions: tuple[str, ...], context: DecisionContext) -> tuple[str, ...]:
    """The ``actions`` the engine lets a policy take here (``none`` always)."""
    if not context.offers:
        return actions
    codes = {o.code for o in context.offers}
    return tuple(a for a in actions if a == NO_OFFER or a in codes)


@dataclass(frozen=True, slots=True)
class ActionValues:
    """Expected profit of every action for some user traits, by the simulator's truth taken
    at a cart moment (the engine's decision points: the checkout is still to come)."""

    catalogue: tuple[OfferSpec, ...]
    window_hours: float
    ttl_hours: float
    margin: float
    #: The assortment's categories, in order (what a category offer's target is among).
    categories: tuple[str, ...] = ()

    def profits(self, user: UserTraits, context: DecisionContext | None = None) -> dict[str, float]:
        """Every action's true expected profit; with a ``context``, only the offers the
        engine lets a policy send there, a category offer's on the category it targets."""
        offers = (context.offers or self.catalogue) if context is not None else self.catalogue
        targets = context.targets if context is not None else {}
        out = {}
        for offer in (None, *offers):
            target = targets.get(offer.code) if offer is not None else None
            row = action_truth(
                user,
                # A category offer as the offer on the category it targets at this decision.
                replace(offer, category=target) if offer is not None and target else offer,
                window_hours=self.window_hours,
                offer_ttl_hours=self.ttl_hours,
                gross_margin=self.margin,
                in_session=True,
                categories=self.categories,
            )
            out[row.action] = row.expected_profit
        return out


def _best(profits: dict[str, float]) -> Choice:
    """The action of highest expected profit, ``none`` unless an offer beats it."""
    best = max(profits, key=lambda a: profits[a])
    action = best if profits[best] > profits[NO_OFFER] else NO_OFFER
    return Choice(action, 1.0, {a: p - profits[NO_OFFER] for a, p in profits.items()}, {})


class OraclePolicy:
    def __init__(self, population: Population, values: ActionValues) -> None:
        self._values = values
        self._users = {u.user_id: u for u in population.users}
        self._cache: dict[tuple[str, ...], Choice] = {}

    def choose(self, context: DecisionContext) -> Choice:
        # The same user decides alike wherever the same offers, on the same categories, can go.
        key = (context.user_id, *(o.code for o in context.offers), *context.targets.values())
        choice = self._cache.get(key)
        if choice is None:
            user = self._users[context.user_id]
            choice = self._cache[key] = _best(self._values.profits(user, context))
        return choice


class CellOraclePolicy:
    """The best a policy deciding per learner cell can do (see the module doc).

    Each decision adds its user's true expected profit of every action to the sums of the
    cell it falls in; the policy takes the action of highest mean there, against sending
    nothing. A cell seen fewer than ``min_decisions`` times gets nothing: its mean is not
    yet the cell's.
    """

    def __init__(self, population: Population, values: ActionValues, min_decisions: int = 30):
        self._values = values
        self._users = {u.user_id: u for u in population.users}
        self._min = min_decisions
        #: cell -> decisions seen there, and per action the sum of their true expected profit
        self._seen: Counter[str] = Counter()
        self._sums: dict[str, Counter[str]] = {}

    def choose(self, context: DecisionContext) -> Choice:
        truth = self._values.profits(self._users[context.user_id], context)
        cell = cell_of(context.features, context.trigger)
        self._seen[cell] += 1
        sums = self._sums.setdefault(cell, Counter())
        sums.update(truth)
        seen = self._seen[cell]
        if seen < self._min:
            return _choice(NO_OFFER)
        return _best({action: total / seen for action, total in sums.items()})


class ObservableOraclePolicy:
    """Bayes over response types from observed behaviour (see the module doc).

    A type's per-session purchase probability has a Beta prior; after ``k`` orders in ``n``
    sessions the type's likelihood is Beta-binomial and its conversion's posterior mean is
    ``(a + k) / (a + b + n)``. Offers shown and clicked add a binomial likelihood with the
    type's click rate, and orders paid with a public code a binomial one with the type's use
    of such codes (coupon hunters almost always, the others as the population says).
    Activity is estimated from sessions seen; basket traits are taken as observed (a shop
    sees its users' baskets).
    """

    def __init__(self, population: Population, shop: Shop, values: ActionValues) -> None:
        self._values = values
        self._users = {u.user_id: u for u in population.users}
        self._shop = shop
        self._mean_rate = sum(u.sessions_per_day for u in population.users) / len(population.users)
        self._population = population
        self._shares = population.type_shares()

    def choose(self, context: DecisionContext) -> Choice:
        shop = self._shop
        user = self._users[context.user_id]
        index = shop.user_index(context.user_id)
        assert index is not None
        ledger = shop.ledger(index)
        # The running session has not checked out yet: it is not evidence.
        n, k = max(ledger.sessions - 1, 0), ledger.orders
        days = max((context.ts - shop.start_ms) / DAY_MS, 0.0)
        # Gamma(1, 1/mean) prior on the session rate, updated with sessions seen.
        rate = (1.0 + n) / (1.0 / self._mean_rate + days)
        weights, pseudo = [], []
        for kind, share in self._shares.items():
            profile = RESPONSE_PROFILES[kind]
            a, b = profile.conversion_beta
            shown, clicked = ledger.offers_shown, ledger.offers_clicked
            clicks = clicked * math.log(profile.click) + (shown - clicked) * math.log1p(
                -profile.click
            )
            code_use = self._population.public_code_use(kind)
            codes = _log_binomial(ledger.public_code_orders, k - ledger.coupon_orders, code_use)
            if codes == -math.inf:
                continue  # a public code this type never uses, or always uses and did not
            weights.append(math.log(share) + _log_beta_binomial(k, n, a, b) + clicks + codes)
            pa, pb = profile.price_sensitivity_beta
            pseudo.append(
                replace(
                    user,
                    response_type=kind,
                    conversion=(a + k) / (a + b + n),
                    price_sensitivity=pa / (pa + pb),
                    sessions_per_day=rate,
                    public_code_use=code_use,
                )
            )
        top = max(weights)
        probs = [math.exp(w - top) for w in weights]
        total = sum(probs)
        profits: dict[str, float] = {}
        for p, traits in zip(probs, pseudo, strict=True):
            for action, value in self._values.profits(traits, context).items():
                profits[action] = profits.get(action, 0.0) + p / total * value
        return _best(profits)


def _log_binomial(k: int, n: int, p: float) -> float:
    """log P(k successes in n | p), without the binomial coefficient; -inf if impossible."""
    if (k > 0 and p <= 0.0) or (n - k > 0 and p >= 1.0):
        return -math.inf
    return (k * math.log(p) if k else 0.0) + ((n - k) * math.log1p(-p) if n > k else 0.0)


def _log_beta_binomial(k: int, n: int, a: float, b: float) -> float:
    """log P(k successes in n | p ~ Beta(a, b)), without the binomial coefficient."""
    return (
        math.lgamma(a + k)
        + math.lgamma(b + n - k)
        - math.lgamma(a + b + n)
        - math.lgamma(a)
        - math.lgamma(b)
        + math.lgamma(a + b)
    )

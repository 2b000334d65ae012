"""Ground truth: what each action would really do for each user, from their latent traits.

For every user and every action (``"none"`` and each catalogue offer) it gives the probability
that the user buys within the attribution window if the engine takes that action at a typical
decision moment, and the expected revenue, discount and profit of that first purchase. It is
what analysts compare the engine's decisions with.

The "typical decision moment" is between two sessions (the engine's offers reach the
simulated users after the triggering session has ended, as sim time runs far faster than the
engine's latency), averaged over the time of day. From that moment:

- sessions arrive as a Poisson process at ``sessions_per_day``; each ends in a purchase with
  probability ``p0`` (the user's own) or, while a shown offer is active, ``p1``
  (``simulator.behaviour.session_conversion``);
- the offer is shown with probability ``REACH``; once shown, it is clicked with the response
  type's probability, and a click brings one extra session at ``p1``;
- a coupon hunter buys what they would buy anyway: without our coupon they leave the cart
  for up to two checkouts waiting for one, then pay with a public code. Over a run an offer
  moves their purchase forward and buys nothing more, so their rows take the run's view:
  the same purchase probability with and without an offer (a 48-hour window would show the
  purchase it moved forward as uplift). Their click opens no session (they take the code),
  and the other accounts of their ring use the coupon on purchases they make while it is
  valid (taken to be like the account it was sent to);
- a user who pays with a public code (``UserTraits.public_code_use``, hunters almost
  always) does so on any purchase without our coupon, so an offer to them costs our
  discount less the public one;
- so with rate ``r`` per hour, window ``W`` and offer life ``T = min(ttl, W)``, the chance of
  no purchase is ``exp(-r W p0)`` unshown and ``(1 - p1 [clicked]) exp(-r T p1 - r (W-T) p0)``
  shown; a first purchase made while the offer is active uses its coupon with probability
  ``COUPON_USE``.

Revenue is the order's value before the coupon (what the gross margin applies to); discount is
what the coupon cost the shop; profit = margin x revenue - discount.

>>> from simulator.population import build_population
>>> from streams.catalogue import DEFAULT_CATALOGUE
>>> rows = ground_truth(build_population(100, seed=5).users, DEFAULT_CATALOGUE)
>>> len(rows), sorted({r.action for r in rows})
(500, ['bundle15', 'free_shipping', 'none', 'pct10', 'pct20'])
>>> all(r.expected_discount == 0 for r in rows if r.action == "none")
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from schemas.decisions import NO_OFFER
from simulator.behaviour import (
    COUPON_USE,
    PUBLIC_CODE_KIND,
    PUBLIC_CODE_VALUE,
    REACH,
    expected_order,
    offer_discount,
    offer_terms,
    session_conversion,
)
from simulator.population import HUNTER_ACCOUNTS, UserTraits
from streams.catalogue import COMPLEMENT, INTEREST, OfferSpec

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class TruthRow:
    """One (user, action) cell of the ground truth, as stored in ClickHouse ``sim_truth``."""

    user_id: str
    action: str
    response_type: str
    p_purchase: float
    expected_revenue: float
    expected_discount: float
    expected_profit: float


def action_truth(
    user: UserTraits,
    offer: OfferSpec | None,
    *,
    window_hours: float = 48.0,
    offer_ttl_hours: float = 48.0,
    gross_margin: float = 0.3,
    in_session: bool = False,
    scope: float | None = None,
    categories: Sequence[str] = (),
) -> TruthRow:
    """The truth for one user and one action (``offer=None`` is "send nothing").

    ``scope``: the share of the user's orders a category offer covers (the expected share of
    its category: ``UserTraits.spend_share``). By default: for an offer on the category of
    the user's interest, the category they spend most on, the one its target usually is (the
    engine picks it from the cart at the decision, ``streams.catalogue``); for an offer on a
    named category, its share (``categories``: the assortment's names, in order); 1 for an
    offer on the whole order.

    ``in_session``: the decision is taken during a session whose checkout is still to come
    (a cart add, a return to the cart): that checkout is the first chance to buy, with the
    offer already shown, and a click on the offer then lands in the running session rather
    than opening a new one. Otherwise the decision falls between sessions.
    """
    sessions = user.sessions_per_day / 24.0  # per hour
    p0 = user.conversion
    now0 = p0 if in_session else 0.0  # the running session's checkout, without an offer
    stay_away = (1.0 - now0) * math.exp(-sessions * window_hours * p0)
    plain_value, _ = expected_order(user, None, 0.0)
    if offer is None:
        p_buy = 1.0 - stay_away
        discount = p_buy * _public_code_discount(user, plain_value)
        return _row(user, NO_OFFER, p_buy, p_buy * plain_value, discount, gross_margin)

    life = min(offer_ttl_hours, window_hours)
    if scope is None:
        scope = _scope(user, offer.category, categories)
    target = _complement(user, offer, categories)
    kind, _, scope = offer_terms(user, offer.kind, offer.value, scope, target)
    p1 = session_conversion(user, [(kind, offer.value, scope)])
    # The running session, or the session a click opens (a hunter's click opens none).
    clicked_in = user.profile.click if user.profile.click_opens_session else 0.0
    now1 = p1 if in_session else clicked_in * p1
    none_while_active = math.exp(-sessions * life * p1)
    none_after = math.exp(-sessions * (window_hours - life) * p0)
    # Shown: the first purchase falls while the offer is active (the session at hand or a
    # regular one), or later at p0.
    buy_active = now1 + (1.0 - now1) * (1.0 - none_while_active)
    buy_later = (1.0 - now1) * none_while_active * (1.0 - none_after)
    p_active = REACH * buy_active
    p_buy = p_active + REACH * buy_later + (1.0 - REACH) * (1.0 - stay_away)
    offer_value, discount = expected_order(
        user, kind, offer.value, scope, -1 if target is None else target
    )
    revenue = p_active * offer_value + (p_buy - p_active) * plain_value
    # Our coupon when used, else the public code a user who uses one would have paid with.
    paid_active = COUPON_USE * discount + (1.0 - COUPON_USE) * _public_code_discount(
        user, offer_value
    )
    paid_later = _public_code_discount(user, plain_value)
    discounts = p_active * paid_active + (p_buy - p_active) * paid_later
    if user.ring >= 0:
        # The ring's other accounts (taken to be like this one) use the coupon on a purchase
        # they would have made anyway while it is valid, instead of the public code.
        mates_buy = REACH * (1.0 - math.exp(-sessions * life * p0))
        extra = COUPON_USE * (discount - _public_code_discount(user, plain_value))
        discounts += (HUNTER_ACCOUNTS - 1) * mates_buy * extra
    return _row(user, offer.code, p_buy, revenue, discounts, gross_margin)


def _complement(user: UserTraits, offer: OfferSpec, categories: Sequence[str]) -> int | None:
    """A complement bundle's category (index): the one it is on, or, for a bundle on
    ``COMPLEMENT`` not yet paired with a cart, the user's second favourite (their favourite
    is what their carts hold most); None for any other offer."""
    if offer.kind != "bundle" or offer.category is None:
        return None
    if offer.category != COMPLEMENT:
        return categories.index(offer.category) if offer.category in categories else -1
    categories_by_share = sorted(range(len(user.category_cdf)), key=user.line_share, reverse=True)
    return categories_by_share[1] if len(categories_by_share) > 1 else -1


def _scope(user: UserTraits, category: str | None, categories: Sequence[str]) -> float:
    if category is None:
        return 1.0
    if category == INTEREST:
        return max(user.category_spend, default=1.0)
    return user.spend_share(categories.index(category) if category in categories else -1)


def _public_code_discount(user: UserTraits, order_value: float) -> float:
    """Expected discount of a public code on an order paid without our coupon."""
    return user.public_code_use * offer_discount(
        PUBLIC_CODE_KIND, PUBLIC_CODE_VALUE, order_value, units=2
    )


def _row(
    user: UserTraits, action: str, p_buy: float, revenue: float, discount: float, margin: float
) -> TruthRow:
    return TruthRow(
        user_id=user.user_id,
        action=action,
        response_type=user.response_type.value,
        p_purchase=p_buy,
        expected_revenue=revenue,
        expected_discount=discount,
        expected_profit=margin * revenue - discount,
    )


def ground_truth(
    users: Iterable[UserTraits],
    catalogue: Sequence[OfferSpec],
    *,
    window_hours: float = 48.0,
    offer_ttl_hours: float = 48.0,
    gross_margin: float = 0.3,
    in_session: bool = True,
    categories: Sequence[str] = (),
) -> list[TruthRow]:
    """Every user's truth for ``"none"`` and each catalogue offer, user by user, for a
    decision taken in a session (the engine's decision points are cart moments);
    ``categories``: the assortment's, for offers on a named category."""
    actions: list[OfferSpec | None] = [None, *catalogue]
    return [
        action_truth(
            user,
            offer,
            window_hours=window_hours,
            offer_ttl_hours=offer_ttl_hours,
            gross_margin=gross_margin,
            in_session=in_session,
            categories=categories,
        )
        for user in users
        for offer in actions
    ]


# --- judging policies against the truth ---------------------------------------------------------

TruthTable = Mapping[str, Mapping[str, TruthRow]]
"""user_id -> action -> row."""


def truth_table(rows: Iterable[TruthRow]) -> dict[str, dict[str, TruthRow]]:
    table: dict[str, dict[str, TruthRow]] = {}
    for row in rows:
        table.setdefault(row.user_id, {})[row.action] = row
    return table


def policy_profit(table: TruthTable, choose: Callable[[str], str]) -> float:
    """Expected total profit of the policy that takes action ``choose(user_id)`` for each user.

    >>> table = {"u1": {"none": TruthRow("u1", "none", "sure_thing", 0.5, 50.0, 0.0, 15.0),
    ...                 "pct10": TruthRow("u1", "pct10", "sure_thing", 0.5, 50.0, 5.0, 10.0)}}
    >>> policy_profit(table, lambda user: "none"), policy_profit(table, best_action(table))
    (15.0, 15.0)
    """
    return sum(actions[choose(user_id)].expected_profit for user_id, actions in table.items())


def best_action(table: TruthTable) -> Callable[[str], str]:
    """The oracle: for each user the action of highest expected profit."""
    best = {
        user_id: max(actions.values(), key=lambda row: row.expected_profit).action
        for user_id, actions in table.items()
    }
    return best.__getitem__


def likeliest_buyers(table: TruthTable, action: str, share: float) -> Callable[[str], str]:
    """The naive targeting: ``action`` for the ``share`` of users likeliest to buy anyway."""
    ranked = sorted(table, key=lambda user_id: table[user_id][NO_OFFER].p_purchase, reverse=True)
    chosen = set(ranked[: round(share * len(ranked))])
    return lambda user_id: action if user_id in chosen else NO_OFFER

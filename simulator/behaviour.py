"""How users react to offers: the arithmetic shared by the session model and the ground truth.

Keeping it in one place is what makes the truth true: ``simulator.shop`` draws purchases with
these probabilities and discounts, and ``simulator.truth`` takes expectations of the same
quantities.

An offer the user has seen and not yet used, until it expires, changes the purchase
probability of each session's checkout (logit shift, see
``simulator.population.ResponseProfile``). At a purchase the user redeems the active coupon
that saves most, with probability ``COUPON_USE``.

>>> from simulator.population import build_population, ResponseType
>>> users = build_population(300, seed=1).users
>>> dog = next(u for u in users if u.response_type is ResponseType.SLEEPING_DOG)
>>> session_conversion(dog, [("percent_off", 20.0, 1.0)]) < dog.conversion
True
>>> fan = next(u for u in users if u.response_type is ResponseType.PERSUADABLE)
>>> p0 = fan.conversion
>>> p0 < session_conversion(fan, [("percent_off", 10.0, 1.0)]) < session_conversion(
...     fan, [("percent_off", 20.0, 1.0)])
True
>>> offer_discount("bundle", 15.0, gross=80.0, units=1), offer_discount("bundle", 15.0, 80.0, 2)
(0.0, 12.0)

A *complement bundle* (a bundle on a category, the one the engine's rules pair with the cart:
``streams.bundles``) takes its discount off the whole order once the order holds a line of
that category, and nudges an order without one to add one (``complement_chances``); the
session model and the truth call it ``"complement"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from simulator.population import MEAN_QUANTITY, UserTraits

#: An offer's notification reaches the user (an ``offer_shown`` event) this often.
REACH = 0.85
#: A purchase made while an applicable offer is active uses its coupon this often.
COUPON_USE = 0.92
#: With a bundle offer active, a one-unit basket gets a second line this often at checkout.
BUNDLE_NUDGE = 0.3
#: A code anyone can find on coupon sites, which the shop honours: 3 off the order, less
#: than any offer of the default catalogue costs. Coupon hunters pay with it whenever they
#: hold none of our coupons (``UserTraits.public_code_use``).
PUBLIC_CODE = "SAVE3"
PUBLIC_CODE_KIND, PUBLIC_CODE_VALUE = "fixed_off", 3.0


def complement_chances(user: UserTraits, target: int) -> tuple[float, float, float]:
    """For a complement bundle on category ``target``: (the chance an order holds a line of it
    anyway, the chance the bundle makes an order without one add one, that line's expected
    value).

    An order's lines are ``1 + Poisson(extra_lines)`` draws of the user's categories, so it
    lacks the category with probability ``(1 - w) exp(-extra_lines w)`` (``w``: the share of
    their lines in it). The nudge works as the plain bundle's does (``BUNDLE_NUDGE``), more
    often for a category the user likes more than the average one, at most always so.
    """
    w = user.line_share(target)
    if w <= 0:  # not one of theirs (or not a category): no line of it, none added
        return 0.0, 0.0, 0.0
    has = 1.0 - (1.0 - w) * math.exp(-user.extra_lines * w)
    add = BUNDLE_NUDGE * min(1.0, len(user.category_cdf) * w)
    # category_spend is w x the category's mean price / unit_price_mean.
    price = user.category_spend[target] / w * user.unit_price_mean
    return has, add, price * MEAN_QUANTITY


def offer_terms(
    user: UserTraits, kind: str, value: float, scope: float, target: int | None = None
) -> tuple[str, float, float]:
    """(kind, value, scope) as ``session_conversion`` reads an offer: a bundle on category
    ``target`` is a complement bundle, whose scope is the chance an order qualifies."""
    if kind == "bundle" and target is not None:
        has, add, _ = complement_chances(user, target)
        return "complement", value, has + (1.0 - has) * add
    return kind, value, scope


def perceived_saving(user: UserTraits, kind: str, value: float, scope: float = 1.0) -> float:
    """The share of a typical order the offer saves this user: what drives their response.

    Free shipping is worth much on a small basket and little on a large one; a bundle discount
    only to those whose orders (often) hold two units or more. ``scope``: the share of their
    orders a category offer's discount covers (``UserTraits.spend_share``): 20 % off a
    category they spend half on saves them 10 % of an order, as they see it.
    """
    if kind in ("percent_off", "complement"):
        return value / 100.0 * scope
    if kind == "bundle":
        qualifying = 1.0 - user.single_unit_share * (1.0 - BUNDLE_NUDGE)
        return value / 100.0 * qualifying
    if kind == "free_shipping":
        return value / (user.order_value_mean + value)
    if kind == "fixed_off":
        return min(scope, value / user.order_value_mean) if scope > 0 else 0.0
    return 0.0


def session_conversion(user: UserTraits, offers: Iterable[tuple[str, float, float]]) -> float:
    """Probability that a session ends in a purchase, given the active offers' (kind, value,
    scope) (scope: ``perceived_saving``).

    With no offer it is the user's own ``conversion``. With offers, the best one counts (people
    act on the best deal they hold); a sleeping dog's contact penalty applies once.
    """
    savings = [perceived_saving(user, kind, value, scope) for kind, value, scope in offers]
    if not savings:
        return user.conversion
    profile = user.profile
    shift = profile.saving_slope * max(savings) * (0.5 + user.price_sensitivity)
    return _sigmoid(_logit(user.conversion) + shift + profile.contact_shift)


def offer_discount(kind: str, value: float, gross: float, units: int) -> float:
    """What redeeming the offer takes off an order of ``gross`` value and ``units`` units.

    Free shipping waives a fee the shop then pays: it does not change the order's total but
    costs the shop ``value``.
    """
    if kind in ("percent_off", "complement"):  # complement: ``gross`` 0 without its line
        return gross * value / 100.0
    if kind == "bundle":
        return gross * value / 100.0 if units >= 2 else 0.0
    if kind == "free_shipping":
        return value
    if kind == "fixed_off":
        return min(value, gross)
    return 0.0


def reduces_order_total(kind: str) -> bool:
    """Whether the discount comes off the amount paid for the items (not shipping)."""
    return kind != "free_shipping"


def expected_order(
    user: UserTraits, kind: str | None, value: float, scope: float = 1.0, target: int = -1
) -> tuple[float, float]:
    """(expected order value, expected discount if the coupon is used) for an order placed
    while an offer of ``kind`` is active; ``kind=None`` for no offer. ``scope``: the share of
    the order a category offer's discount covers (its category's expected share).

    Mirrors the shop's checkout: lines are independent, so an order's expected value is lines
    times ``unit_price_mean`` times ``MEAN_QUANTITY``; the bundle nudge adds a line to a
    one-unit basket with probability ``BUNDLE_NUDGE``, a complement bundle's (on category
    ``target``) a line of its category to an order without one (``complement_chances``).
    (``fixed_off`` is approximated by the discount on an average order.)
    """
    line_value = user.unit_price_mean * MEAN_QUANTITY
    gross = user.order_value_mean
    if kind is None:
        return gross, 0.0
    if kind == "complement":
        has, add, added = complement_chances(user, target)
        nudged = (1.0 - has) * add
        return gross + nudged * added, value / 100.0 * (has * gross + nudged * (gross + added))
    if kind == "bundle":
        gross += BUNDLE_NUDGE * user.single_unit_share * line_value
        # Orders still of a single unit (no nudge) get no bundle discount.
        one_unit_value = user.single_unit_share * (1.0 - BUNDLE_NUDGE) * user.unit_price_mean
        return gross, value / 100.0 * (gross - one_unit_value)
    return gross, offer_discount(kind, value, gross * scope, units=2)


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))

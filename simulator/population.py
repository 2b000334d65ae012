"""The shop's users: latent traits drawn once per run, never shown to the engine.

Each user has an activity level (sessions per day, heavy-tailed), a price sensitivity, a
per-session purchase probability, a basket size, category preferences, and a response type
that says how an offer changes their behaviour (see :class:`ResponseType`). The engine only
sees what these traits make the user do; the ground truth (``simulator.truth``) is computed
from them.

>>> population = build_population(200, seed=3)
>>> len(population.users), population.users[42].user_id
(200, 'u00042')
>>> sorted({u.response_type.value for u in population.users})
['lost_cause', 'persuadable', 'sleeping_dog', 'sure_thing']
>>> hunted = build_population(200, seed=3, coupon_hunters=0.05)
>>> sum(u.response_type is ResponseType.COUPON_HUNTER for u in hunted.users)
9
>>> [u for u in hunted.users if u.response_type is not ResponseType.COUPON_HUNTER] == [
...     u for u in population.users if u.user_id in {h.user_id for h in hunted.users
...     if h.response_type is not ResponseType.COUPON_HUNTER}]
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from simulator.assortment import Assortment, build_assortment

#: Share of the units of an order line bought one, two or three at a time (cumulative).
QUANTITY_CDF = (0.8, 0.95, 1.0)
MEAN_QUANTITY = 1 * 0.8 + 2 * 0.15 + 3 * 0.05
#: A user browses outside their preferred categories this often.
EXPLORE_SHARE = 0.1
#: Categories bought together in a shop with complements (``build_population(...,
#: complements=True)``): each is the other's complement.
COMPLEMENT_PAIRS = (
    ("electronics", "home"),
    ("fashion", "beauty"),
    ("books", "toys"),
    ("sports", "grocery"),
)
#: There, the share of a user's taste that goes to their favourite category and its
#: complement, half each: whoever likes one likes the other, so they meet in orders.
COMPLEMENT_PULL = 0.5


class ResponseType(StrEnum):
    """The classic uplift segments: how being sent an offer changes a user's buying."""

    #: Buy much more with an offer, more so for bigger discounts and if price-sensitive.
    PERSUADABLE = "persuadable"
    #: Buy anyway; an offer only gives margin away.
    SURE_THING = "sure_thing"
    #: Rarely buy, offer or not.
    LOST_CAUSE = "lost_cause"
    #: Buy less once contacted: the offer annoys them.
    SLEEPING_DOG = "sleeping_dog"
    #: Buy as much with offers as without, and never without a coupon: they leave the cart
    #: waiting for one of ours and, none coming, pay with a code from a coupon site. An offer
    #: only moves a purchase forward and swaps the public code's small discount for ours.
    #: They click offers to grab the code, not to shop (the click opens no session), browse
    #: little and churn their carts. Absent unless a population asks for them
    #: (``build_population(..., coupon_hunters=share)``).
    COUPON_HUNTER = "coupon_hunter"


@dataclass(frozen=True, slots=True)
class ResponseProfile:
    """Population share and offer response of one type.

    ``conversion_beta`` are the Beta parameters of the per-session purchase probability.
    An active offer shifts that probability on the logit scale by
    ``saving_slope * saving * (0.5 + price_sensitivity) + contact_shift`` where ``saving`` is
    the share of the order the offer saves (``simulator.behaviour.perceived_saving``).
    ``click`` is the probability of clicking an offer once shown; ``click_opens_session``
    whether that click brings the user to the shop (a session) or only takes the code.
    """

    share: float
    conversion_beta: tuple[float, float]
    price_sensitivity_beta: tuple[float, float]
    click: float
    saving_slope: float
    contact_shift: float
    click_opens_session: bool = True


RESPONSE_PROFILES: dict[ResponseType, ResponseProfile] = {
    ResponseType.PERSUADABLE: ResponseProfile(0.25, (2.0, 40.0), (4.0, 2.0), 0.30, 9.0, 0.0),
    ResponseType.SURE_THING: ResponseProfile(0.20, (6.0, 12.0), (2.0, 3.0), 0.10, 0.0, 0.0),
    ResponseType.LOST_CAUSE: ResponseProfile(0.40, (1.0, 150.0), (2.0, 2.0), 0.04, 1.5, 0.0),
    ResponseType.SLEEPING_DOG: ResponseProfile(0.15, (4.0, 20.0), (2.0, 2.0), 0.02, 0.0, -1.2),
    # Share 0: hunters are drawn apart, so that a population without them is the one every
    # seed drew before they existed (``build_population``).
    ResponseType.COUPON_HUNTER: ResponseProfile(
        0.0, (6.0, 12.0), (2.0, 2.0), 0.8, 0.0, 0.0, click_opens_session=False
    ),
}
#: A coupon hunter pays with a public code (a coupon site's) whenever they hold none of ours.
HUNTER_CODE_USE = 0.9
#: A hunter's sessions: a view or two (they come for the code, not to browse), and a cart
#: they fill and trim to meet a coupon's conditions.
HUNTER_VIEWS_PER_SESSION = 1.5
#: A hunter who means to buy and holds none of our coupons leaves the cart for this many
#: checkouts, waiting for one, then buys with a public code (``simulator.shop``).
HUNTER_PATIENCE = 2
HUNTER_REMOVE_RATE = 0.35
#: Hunters come back to look for codes: this many times as many sessions as drawn.
HUNTER_ACTIVITY = 3.0
#: Hunters run several accounts (one person, one device): a coupon one account receives,
#: the others use too (``simulator.shop``).
HUNTER_ACCOUNTS = 3
#: The other users remove a line after a cart add this often.
REMOVE_RATE = 0.05


@dataclass(frozen=True, slots=True)
class UserTraits:
    """One user's latent parameters, plus expectations derived from them.

    An order has ``1 + Poisson(extra_lines)`` lines; a line is an item of a category drawn
    from ``category_cdf`` (uniform within it) in a quantity drawn from ``QUANTITY_CDF``. Hence
    ``unit_price_mean`` (expected price of one line's item), ``order_value_mean`` (expected
    order value before any offer) and ``single_unit_share`` (chance an order is one unit).
    """

    user_id: str
    response_type: ResponseType
    sessions_per_day: float
    price_sensitivity: float
    conversion: float
    extra_lines: float
    category_cdf: tuple[float, ...]
    views_per_session: float
    add_to_cart_rate: float
    unit_price_mean: float
    order_value_mean: float
    single_unit_share: float
    #: Chance that a purchase paid with none of our coupons uses a public code instead.
    public_code_use: float = 0.0
    #: Chance of removing a line right after a cart add.
    remove_rate: float = REMOVE_RATE
    #: A hunter's ring of accounts (-1: none); every account of a ring uses its coupons.
    ring: int = -1
    #: The expected share of the user's spending that goes to each category (the
    #: assortment's order): what a discount on one category saves them, as they see it.
    category_spend: tuple[float, ...] = ()

    def line_share(self, category: int) -> float:
        """The chance that one line of the user's orders is of ``category``."""
        cdf = self.category_cdf
        if not 0 <= category < len(cdf):
            return 0.0
        return cdf[category] - (cdf[category - 1] if category else 0.0)

    def spend_share(self, category: int | None) -> float:
        """The expected share of an order a discount on ``category`` covers (None: all)."""
        if category is None:
            return 1.0
        return self.category_spend[category] if 0 <= category < len(self.category_spend) else 0.0

    @property
    def profile(self) -> ResponseProfile:
        return RESPONSE_PROFILES[self.response_type]


@dataclass(frozen=True, slots=True)
class Population:
    assortment: Assortment
    users: tuple[UserTraits, ...]
    #: What ``build_population`` was asked for (the observable oracle's priors).
    coupon_hunters: float = 0.0
    casual_code_use: float = 0.0

    def type_shares(self) -> dict[ResponseType, float]:
        """The prior share of each response type present in this population."""
        shares = {
            kind: profile.share * (1.0 - self.coupon_hunters)
            for kind, profile in RESPONSE_PROFILES.items()
            if profile.share > 0
        }
        if self.coupon_hunters > 0:
            shares[ResponseType.COUPON_HUNTER] = self.coupon_hunters
        return shares

    def public_code_use(self, kind: ResponseType) -> float:
        """How often a user of this type pays with a public code when holding no coupon."""
        return HUNTER_CODE_USE if kind is ResponseType.COUPON_HUNTER else self.casual_code_use


def user_id_of(index: int, prefix: str = "") -> str:
    """The id of the ``index``-th user: ``u00042``, after ``prefix``."""
    return f"{prefix}u{index:05d}"


def build_population(
    n_users: int,
    seed: int,
    user_prefix: str = "",
    *,
    coupon_hunters: float = 0.0,
    casual_code_use: float = 0.0,
    complements: bool = False,
) -> Population:
    """Draw an assortment and ``n_users`` users; the same seed gives the same population.

    ``user_prefix`` keeps the users of different runs apart: the engine remembers a user's
    latest event time, and a second run replaying the same days for the same ids would look
    late to it.

    ``coupon_hunters``: the share of users turned into coupon hunters, chosen and drawn from
    a stream of their own, so every other user is exactly the user this seed draws without
    hunters (and 0 reproduces the populations of before). ``casual_code_use``: the chance
    that one of the other users pays with a public code when holding none of ours (0: never,
    as before), so that a code alone does not make a hunter.

    ``complements``: categories come in pairs bought together (``COMPLEMENT_PAIRS``): half of
    each user's taste goes to their favourite category and its complement, from the same
    draws (False: tastes independent across categories, as before).
    """
    if not (0.0 <= coupon_hunters < 1.0 and 0.0 <= casual_code_use <= 1.0):
        raise ValueError(
            f"coupon_hunters must be in [0, 1) and casual_code_use in [0, 1], "
            f"got {coupon_hunters} and {casual_code_use}"
        )
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1, got {n_users}")
    # Each part of the simulator draws from its own branch of the seed (spawn key).
    assortment_seed, users_seed = np.random.SeedSequence(seed, spawn_key=(0,)).spawn(2)
    assortment = build_assortment(assortment_seed)
    rng = np.random.default_rng(users_seed)
    types = tuple(t for t, profile in RESPONSE_PROFILES.items() if profile.share > 0)
    shares = np.array([RESPONSE_PROFILES[t].share for t in types])
    type_index = rng.choice(len(types), size=n_users, p=shares / shares.sum())
    sessions = np.clip(rng.lognormal(math.log(0.7), 0.9, n_users), 0.05, 30.0)
    extra_lines = rng.gamma(1.0, 0.8, n_users)
    n_categories = len(assortment.categories)
    preferences = rng.dirichlet(np.full(n_categories, 0.4), n_users)
    if complements:
        preferences = _pull_to_complements(preferences, assortment.categories)
    views = 2.0 + rng.gamma(2.0, 2.5, n_users)
    add_rates = rng.beta(2.0, 8.0, n_users)
    mean_prices = np.array(assortment.category_mean_price)
    users = []
    for i in range(n_users):
        response_type = types[type_index[i]]
        profile = RESPONSE_PROFILES[response_type]
        weights = (1 - EXPLORE_SHARE) * preferences[i] + EXPLORE_SHARE / n_categories
        cdf = np.cumsum(weights)
        cdf[-1] = 1.0
        unit_price = float(weights @ mean_prices)
        x = float(extra_lines[i])
        users.append(
            UserTraits(
                user_id=user_id_of(i, user_prefix),
                response_type=response_type,
                sessions_per_day=float(sessions[i]),
                price_sensitivity=float(rng.beta(*profile.price_sensitivity_beta)),
                conversion=float(rng.beta(*profile.conversion_beta)),
                extra_lines=x,
                category_cdf=tuple(float(c) for c in cdf),
                views_per_session=float(views[i]),
                add_to_cart_rate=float(add_rates[i]),
                unit_price_mean=unit_price,
                order_value_mean=(1.0 + x) * unit_price * MEAN_QUANTITY,
                single_unit_share=QUANTITY_CDF[0] * math.exp(-x),
                public_code_use=casual_code_use,
                category_spend=tuple(float(v) for v in weights * mean_prices / unit_price),
            )
        )
    if coupon_hunters > 0:
        _make_hunters(users, coupon_hunters, np.random.SeedSequence(seed, spawn_key=(3,)))
    return Population(assortment, tuple(users), coupon_hunters, casual_code_use)


def _pull_to_complements(preferences: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """Each row's tastes with ``COMPLEMENT_PULL`` of them moved to its favourite category and
    that category's complement, half each (a category without one keeps it all).

    >>> cats = ("books", "toys", "home")
    >>> _pull_to_complements(np.array([[0.2, 0.0, 0.8], [0.6, 0.0, 0.4]]), cats).tolist()
    [[0.1, 0.0, 0.9], [0.55, 0.25, 0.2]]
    """
    partner = np.arange(len(categories))
    index = {c: k for k, c in enumerate(categories)}
    for a, b in COMPLEMENT_PAIRS:
        if a in index and b in index:
            partner[index[a]], partner[index[b]] = index[b], index[a]
    rows = np.arange(len(preferences))
    favourite = preferences.argmax(axis=1)
    pulled: np.ndarray = (1 - COMPLEMENT_PULL) * preferences
    pulled[rows, favourite] += COMPLEMENT_PULL / 2
    pulled[rows, partner[favourite]] += COMPLEMENT_PULL / 2
    return pulled


def _make_hunters(users: list[UserTraits], share: float, seed: np.random.SeedSequence) -> None:
    """Turn a ``share`` of ``users`` into coupon hunters, in place. Activity, basket and
    tastes stay as drawn; conversion and price sensitivity come from the hunters' profile."""
    rng = np.random.default_rng(seed)
    chosen = rng.random(len(users)) < share
    profile = RESPONSE_PROFILES[ResponseType.COUPON_HUNTER]
    for k, i in enumerate(np.flatnonzero(chosen)):
        users[i] = replace(
            users[i],
            ring=k // HUNTER_ACCOUNTS,
            response_type=ResponseType.COUPON_HUNTER,
            sessions_per_day=min(users[i].sessions_per_day * HUNTER_ACTIVITY, 30.0),
            conversion=float(rng.beta(*profile.conversion_beta)),
            price_sensitivity=float(rng.beta(*profile.price_sensitivity_beta)),
            views_per_session=HUNTER_VIEWS_PER_SESSION,
            public_code_use=HUNTER_CODE_USE,
            remove_rate=HUNTER_REMOVE_RATE,
        )

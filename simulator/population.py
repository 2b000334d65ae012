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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from simulator.assortment import Assortment, build_assortment

#: Share of the units of an order line bought one, two or three at a time (cumulative).
QUANTITY_CDF = (0.8, 0.95, 1.0)
MEAN_QUANTITY = 1 * 0.8 + 2 * 0.15 + 3 * 0.05
#: A user browses outside their preferred categories this often.
EXPLORE_SHARE = 0.1


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


@dataclass(frozen=True, slots=True)
class ResponseProfile:
    """Population share and offer response of one type.

    ``conversion_beta`` are the Beta parameters of the per-session purchase probability.
    An active offer shifts that probability on the logit scale by
    ``saving_slope * saving * (0.5 + price_sensitivity) + contact_shift`` where ``saving`` is
    the share of the order the offer saves (``simulator.behaviour.perceived_saving``).
    ``click`` is the probability of clicking an offer once shown.
    """

    share: float
    conversion_beta: tuple[float, float]
    price_sensitivity_beta: tuple[float, float]
    click: float
    saving_slope: float
    contact_shift: float


RESPONSE_PROFILES: dict[ResponseType, ResponseProfile] = {
    ResponseType.PERSUADABLE: ResponseProfile(0.25, (2.0, 40.0), (4.0, 2.0), 0.30, 9.0, 0.0),
    ResponseType.SURE_THING: ResponseProfile(0.20, (6.0, 12.0), (2.0, 3.0), 0.10, 0.0, 0.0),
    ResponseType.LOST_CAUSE: ResponseProfile(0.40, (1.0, 150.0), (2.0, 2.0), 0.04, 1.5, 0.0),
    ResponseType.SLEEPING_DOG: ResponseProfile(0.15, (4.0, 20.0), (2.0, 2.0), 0.02, 0.0, -1.2),
}


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

    @property
    def profile(self) -> ResponseProfile:
        return RESPONSE_PROFILES[self.response_type]


@dataclass(frozen=True, slots=True)
class Population:
    assortment: Assortment
    users: tuple[UserTraits, ...]


def user_id_of(index: int, prefix: str = "") -> str:
    """The id of the ``index``-th user: ``u00042``, after ``prefix``."""
    return f"{prefix}u{index:05d}"


def build_population(n_users: int, seed: int, user_prefix: str = "") -> Population:
    """Draw an assortment and ``n_users`` users; the same seed gives the same population.

    ``user_prefix`` keeps the users of different runs apart: the engine remembers a user's
    latest event time, and a second run replaying the same days for the same ids would look
    late to it.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1, got {n_users}")
    # Each part of the simulator draws from its own branch of the seed (spawn key).
    assortment_seed, users_seed = np.random.SeedSequence(seed, spawn_key=(0,)).spawn(2)
    assortment = build_assortment(assortment_seed)
    rng = np.random.default_rng(users_seed)
    types = tuple(RESPONSE_PROFILES)
    shares = np.array([RESPONSE_PROFILES[t].share for t in types])
    type_index = rng.choice(len(types), size=n_users, p=shares / shares.sum())
    sessions = np.clip(rng.lognormal(math.log(0.7), 0.9, n_users), 0.05, 30.0)
    extra_lines = rng.gamma(1.0, 0.8, n_users)
    n_categories = len(assortment.categories)
    preferences = rng.dirichlet(np.full(n_categories, 0.4), n_users)
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
            )
        )
    return Population(assortment, tuple(users))

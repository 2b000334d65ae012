"""Complement bundles in the simulator: in a shop with complements, categories meet in orders
in pairs (what bundle rules find); a bundle on a category nudges orders without it to add a
line of it, takes its percent off the whole order once the order holds it, and the truth
agrees with what the session model does."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

import numpy as np
import pytest

from simulator.population import (
    COMPLEMENT_PAIRS,
    Population,
    ResponseType,
    UserTraits,
    build_population,
)
from simulator.shop import Shop
from simulator.truth import action_truth
from streams.bundles import count_rules
from streams.catalogue import COMPLEMENT, OfferSpec
from tests.unit.simulator.conftest import HOUR_MS, T0, targeted_offer

PAIR15 = OfferSpec("pair15", "bundle", 15.0, "15 % off when you add {category}", "PB", COMPLEMENT)
WINDOW_MS = 48 * HOUR_MS


@pytest.fixture(scope="module")
def shop_with_complements() -> Population:
    return build_population(8000, seed=12, complements=True)


def _lifts(population: Population, days: int) -> dict[tuple[str, str], float]:
    shop = Shop(population, start_ms=T0, run_id="r", seed=3)
    baskets = [
        [i["category"] for i in e["items"]]
        for e in shop.advance(T0 + days * 24 * HOUR_MS)
        if e["type"] == "purchase"
    ]
    return {(r.antecedent, r.consequent): r.lift for r in count_rules(baskets, 5, 0, 0, 0).rules}


def test_complements_are_bought_together_and_change_nothing_else() -> None:
    plain, paired = (build_population(3000, seed=5, complements=c) for c in (False, True))
    for a, b in zip(plain.users, paired.users, strict=True):
        assert replace(
            a, category_cdf=(), category_spend=(), unit_price_mean=0.0, order_value_mean=0.0
        ) == replace(
            b, category_cdf=(), category_spend=(), unit_price_mean=0.0, order_value_mean=0.0
        )
    with_pairs, without = _lifts(paired, 10), _lifts(plain, 10)
    for a, b in COMPLEMENT_PAIRS:
        assert with_pairs[a, b] > 1.15 > without.get((a, b), 0.0), (a, b)


def _second_favourite(user: UserTraits, categories: tuple[str, ...]) -> str:
    return categories[int(np.argsort(user.category_spend)[-2])]


def _orders(population: Population, offered: bool) -> dict[str, dict[str, object]]:
    """Each user's first purchase within the window, with the bundle on their second
    favourite category sent at the start, or nothing sent (the same users and draws)."""
    shop = Shop(population, start_ms=T0, run_id="b", seed=5)
    categories = population.assortment.categories
    if offered:
        for n, user in enumerate(population.users):
            shop.receive_offer(
                targeted_offer(PAIR15, user.user_id, _second_favourite(user, categories), n), T0
            )
    first: dict[str, dict[str, object]] = {}
    for event in shop.advance(T0 + WINDOW_MS):
        if event["type"] == "purchase":
            first.setdefault(event["user_id"], event)
    return first


def test_the_bundle_adds_its_category_and_takes_its_percent_off_orders_holding_it(
    shop_with_complements: Population,
) -> None:
    population = dataclasses.replace(
        shop_with_complements, users=shop_with_complements.users[:2000]
    )
    categories = population.assortment.categories
    target = {u.user_id: _second_favourite(u, categories) for u in population.users}

    def holds(order: dict[str, object]) -> bool:
        items = order["items"]
        assert isinstance(items, list)
        return any(i["category"] == target[str(order["user_id"])] for i in items)

    with_bundle, without = _orders(population, True), _orders(population, False)
    coded = 0
    for order in with_bundle.values():
        items = order["items"]
        assert isinstance(items, list)
        gross = sum(i["price"] * i["quantity"] for i in items)
        if "coupon_code" in order:
            coded += 1
            assert holds(order)
            assert order["order_total"] == pytest.approx(0.85 * gross, abs=0.02)
        else:
            assert order["order_total"] == pytest.approx(gross, abs=0.02)
    assert coded > 50
    share = np.mean([holds(o) for o in with_bundle.values()])
    assert share > np.mean([holds(o) for o in without.values()]) + 0.05


def test_truth_agrees_with_simulated_outcomes_of_a_complement_bundle(
    shop_with_complements: Population,
) -> None:
    """A persuadable user's purchase chance, revenue and discount under the bundle on their
    second favourite category, as simulated and as the truth says."""
    users = tuple(
        u for u in shop_with_complements.users if u.response_type is ResponseType.PERSUADABLE
    )
    population = dataclasses.replace(shop_with_complements, users=users)
    categories = population.assortment.categories
    first = _orders(population, True)
    bought, revenue, discount = [], [], []
    for user in users:
        order = first.get(user.user_id)
        bought.append(order is not None)
        items = order["items"] if order is not None else []
        assert isinstance(items, list)
        gross = sum(i["price"] * i["quantity"] for i in items)
        revenue.append(gross)
        coded = order is not None and "coupon_code" in order
        discount.append(0.15 * gross if coded else 0.0)
    rows = [
        action_truth(
            u, replace(PAIR15, category=_second_favourite(u, categories)), categories=categories
        )
        for u in users
    ]
    for name, outcome in (
        ("p_purchase", np.array(bought, float)),
        ("expected_revenue", np.array(revenue)),
        ("expected_discount", np.array(discount)),
    ):
        expected = np.mean([getattr(row, name) for row in rows])
        standard_error = outcome.std() / math.sqrt(len(users))
        assert abs(outcome.mean() - expected) < 4 * standard_error, (name, outcome.mean(), expected)


def test_truth_counts_the_line_the_bundle_adds(shop_with_complements: Population) -> None:
    """What an order is worth with the bundle, against without (the same users and draws):
    the truth's increase is the simulated one, within the truth's approximation."""
    users = shop_with_complements.users
    categories = shop_with_complements.assortment.categories

    def per_buyer(orders: dict[str, dict[str, object]]) -> float:
        values = [sum(i["price"] * i["quantity"] for i in o["items"]) for o in orders.values()]  # type: ignore[attr-defined]
        return float(np.mean(values))

    simulated = per_buyer(_orders(shop_with_complements, True)) - per_buyer(
        _orders(shop_with_complements, False)
    )
    rows = [
        (
            action_truth(u, None),
            action_truth(
                u, replace(PAIR15, category=_second_favourite(u, categories)), categories=categories
            ),
        )
        for u in users
    ]
    plain = sum(r.expected_revenue for r, _ in rows) / sum(r.p_purchase for r, _ in rows)
    bundled = sum(r.expected_revenue for _, r in rows) / sum(r.p_purchase for _, r in rows)
    assert 0.5 < simulated / (bundled - plain) < 1.5, (simulated, bundled - plain)

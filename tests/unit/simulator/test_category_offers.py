"""Category offers in the simulator: users respond to the share of their spending a category
discount covers, the coupon applies to that category's lines only, and the truth agrees with
what the session model does."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace

import numpy as np
import pytest

from simulator.behaviour import perceived_saving
from simulator.population import Population, ResponseType, build_population
from simulator.shop import Shop
from simulator.truth import action_truth
from streams.catalogue import INTEREST, OfferSpec
from tests.unit.simulator.conftest import HOUR_MS, T0, targeted_offer

CAT30 = OfferSpec("cat30", "percent_off", 30.0, "30 % off {category}", "C30", INTEREST)
WINDOW_MS = 48 * HOUR_MS


@pytest.fixture(scope="module")
def big_population() -> Population:
    return build_population(8000, seed=12)


def test_a_category_discount_saves_what_the_user_spends_there() -> None:
    population = build_population(50, seed=4)
    user = population.users[7]
    assert sum(user.category_spend) == pytest.approx(1.0)
    top = int(np.argmax(user.category_spend))
    share = user.spend_share(top)
    assert perceived_saving(user, "percent_off", 30.0, share) == pytest.approx(0.3 * share)
    assert user.spend_share(None) == 1.0 and user.spend_share(99) == 0.0
    # The truth of an offer on the user's interest takes their top category's share.
    assert action_truth(user, CAT30) == action_truth(user, CAT30, scope=share)
    # 30 % off what makes a share s of the orders is, to the user and the shop, 30 x s % off.
    whole = action_truth(user, replace(CAT30, category=None, value=30.0 * share))
    for name in ("p_purchase", "expected_revenue", "expected_discount"):
        assert getattr(action_truth(user, CAT30), name) == pytest.approx(getattr(whole, name))
    named = replace(CAT30, category="books")
    categories = population.assortment.categories
    books = categories.index("books")
    assert action_truth(user, named, categories=categories) == action_truth(
        user, named, scope=user.spend_share(books)
    )


def test_the_coupon_takes_its_percent_off_the_categorys_lines_only(
    big_population: Population,
) -> None:
    users = big_population.users[:1500]
    shop = Shop(dataclasses.replace(big_population, users=users), start_ms=T0, run_id="c", seed=5)
    categories = big_population.assortment.categories
    targets = {u.user_id: categories[int(np.argmax(u.category_spend))] for u in users}
    for n, user in enumerate(users):
        shop.receive_offer(targeted_offer(CAT30, user.user_id, targets[user.user_id], n), T0)
    coded = plain = 0
    for event in shop.advance(T0 + WINDOW_MS):
        if event["type"] != "purchase":
            continue
        target = targets[event["user_id"]]
        covered = sum(i["price"] * i["quantity"] for i in event["items"] if i["category"] == target)
        gross = sum(i["price"] * i["quantity"] for i in event["items"])
        if "coupon_code" in event:
            coded += 1
            assert covered > 0
            assert event["order_total"] == pytest.approx(gross - 0.3 * covered, abs=0.02)
        elif covered == 0:
            plain += 1  # nothing of the category: the coupon did not apply
    assert coded > 50 and plain > 0


def test_truth_agrees_with_simulated_outcomes_of_a_category_offer(
    big_population: Population,
) -> None:
    """A persuadable user's purchase chance, revenue and discount under 30 % off the category
    they spend most on, as simulated and as the truth says."""
    users = [u for u in big_population.users if u.response_type is ResponseType.PERSUADABLE]
    shop = Shop(
        dataclasses.replace(big_population, users=tuple(users)), start_ms=T0, run_id="t", seed=5
    )
    categories = big_population.assortment.categories
    targets = {u.user_id: categories[int(np.argmax(u.category_spend))] for u in users}
    for n, user in enumerate(users):
        shop.receive_offer(targeted_offer(CAT30, user.user_id, targets[user.user_id], n), T0)
    first: dict[str, dict[str, object]] = {}
    for event in shop.advance(T0 + WINDOW_MS):
        if event["type"] == "purchase":
            first.setdefault(event["user_id"], event)
    bought, discount = [], []
    for user in users:
        purchase = first.get(user.user_id)
        bought.append(purchase is not None)
        if purchase is None or "coupon_code" not in purchase:
            discount.append(0.0)
            continue
        items = purchase["items"]
        assert isinstance(items, list)
        target = targets[user.user_id]
        discount.append(
            0.3 * sum(i["price"] * i["quantity"] for i in items if i["category"] == target)
        )
    rows = [action_truth(u, CAT30) for u in users]
    for name, outcome in (
        ("p_purchase", np.array(bought, float)),
        ("expected_discount", np.array(discount)),
    ):
        expected = np.mean([getattr(row, name) for row in rows])
        standard_error = outcome.std() / math.sqrt(len(users))
        assert abs(outcome.mean() - expected) < 4 * standard_error, (name, outcome.mean(), expected)

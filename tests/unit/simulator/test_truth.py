"""The ground truth: the uplift segments behave as their names say, it rewards profit-aware
targeting, and it agrees with what the session model actually does."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from schemas.decisions import NO_OFFER
from simulator.behaviour import offer_discount
from simulator.population import Population, ResponseType, UserTraits, build_population
from simulator.shop import Shop
from simulator.truth import (
    TruthRow,
    action_truth,
    best_action,
    ground_truth,
    likeliest_buyers,
    policy_profit,
    truth_table,
)
from streams.catalogue import DEFAULT_CATALOGUE
from tests.unit.simulator.conftest import HOUR_MS, SPECS, T0, OfferFactory

WINDOW_MS = 48 * HOUR_MS


@pytest.fixture(scope="module")
def big_population() -> Population:
    return build_population(6000, seed=11)


@pytest.fixture(scope="module")
def table(big_population: Population) -> dict[str, dict[str, TruthRow]]:
    return truth_table(ground_truth(big_population.users, DEFAULT_CATALOGUE))


def _of_type(population: Population, kind: ResponseType) -> list[UserTraits]:
    return [u for u in population.users if u.response_type is kind]


def _uplift(user: UserTraits, code: str) -> float:
    return action_truth(user, SPECS[code]).p_purchase - action_truth(user, None).p_purchase


def test_persuadables_buy_more_with_bigger_discounts(big_population: Population) -> None:
    for user in _of_type(big_population, ResponseType.PERSUADABLE):
        assert 0 < _uplift(user, "pct10") < _uplift(user, "pct20")
    mean = np.mean(
        [_uplift(u, "pct20") for u in _of_type(big_population, ResponseType.PERSUADABLE)]
    )
    assert mean > 0.15


def test_sleeping_dogs_buy_less_once_contacted(big_population: Population) -> None:
    for user in _of_type(big_population, ResponseType.SLEEPING_DOG):
        assert all(_uplift(user, code) < 0 for code in SPECS)


def test_sure_things_buy_anyway_and_offers_only_cost_margin(
    big_population: Population, table: dict[str, dict[str, TruthRow]]
) -> None:
    sure = _of_type(big_population, ResponseType.SURE_THING)
    for user in sure:
        assert all(abs(_uplift(user, code)) < 0.05 for code in SPECS)
    # The click's extra visit can pay for a rarely visiting one; for the segment it never does.
    losing = [
        table[u.user_id]["pct10"].expected_profit < table[u.user_id][NO_OFFER].expected_profit
        for u in sure
    ]
    assert sum(losing) > 0.9 * len(sure)
    for code in SPECS:
        assert sum(table[u.user_id][code].expected_profit for u in sure) < sum(
            table[u.user_id][NO_OFFER].expected_profit for u in sure
        )


def test_lost_causes_rarely_buy_either_way(big_population: Population) -> None:
    users = _of_type(big_population, ResponseType.LOST_CAUSE)
    for code in (None, *SPECS):
        mean = np.mean([action_truth(u, SPECS[code] if code else None).p_purchase for u in users])
        assert mean < 0.05


def test_response_depends_on_the_user_and_the_offer_kind(big_population: Population) -> None:
    user = _of_type(big_population, ResponseType.PERSUADABLE)[0]
    keen = dataclasses.replace(user, price_sensitivity=0.9)
    cool = dataclasses.replace(user, price_sensitivity=0.1)
    assert _uplift(keen, "pct10") > _uplift(cool, "pct10")
    small = dataclasses.replace(user, order_value_mean=15.0)
    large = dataclasses.replace(user, order_value_mean=300.0)
    assert _uplift(small, "free_shipping") > 2 * _uplift(large, "free_shipping")
    multi = dataclasses.replace(user, single_unit_share=0.05)
    single = dataclasses.replace(user, single_unit_share=0.8)
    assert _uplift(multi, "bundle15") > _uplift(single, "bundle15")


def test_profit_aware_uplift_beats_the_naive_policies(
    table: dict[str, dict[str, TruthRow]],
) -> None:
    oracle = policy_profit(table, best_action(table))
    nothing = policy_profit(table, lambda user: NO_OFFER)
    naive = [nothing]
    for code in SPECS:
        everyone = policy_profit(table, {user: code for user in table}.__getitem__)
        assert everyone < nothing  # blanket discounts lose money
        naive += [everyone, policy_profit(table, likeliest_buyers(table, code, 0.3))]
    assert oracle > 1.05 * max(naive)


def test_profit_is_margin_on_revenue_less_discount(table: dict[str, dict[str, TruthRow]]) -> None:
    for rows in list(table.values())[:100]:
        for row in rows.values():
            assert row.expected_profit == pytest.approx(
                0.3 * row.expected_revenue - row.expected_discount
            )
            assert 0 <= row.p_purchase <= 1 and row.expected_discount >= 0


# --- the truth against the session model ------------------------------------------------------


def _simulate(
    users: list[UserTraits], population: Population, code: str | None, make_offer: OfferFactory
) -> dict[str, np.ndarray[Any, Any]]:
    """Offer ``code`` to every user at T0 and record their first purchase within the window."""
    shop = Shop(
        dataclasses.replace(population, users=tuple(users)), start_ms=T0, run_id="t", seed=5
    )
    if code is not None:
        for user in users:
            shop.receive_offer(make_offer(user.user_id, code, created_at=T0), T0)
    first: dict[str, dict[str, Any]] = {}
    for event in shop.advance(T0 + WINDOW_MS):
        if event["type"] == "purchase":
            first.setdefault(event["user_id"], event)
    bought, revenue, discount = [], [], []
    for user in users:
        purchase = first.get(user.user_id)
        gross = sum(i["price"] * i["quantity"] for i in purchase["items"]) if purchase else 0.0
        units = sum(i["quantity"] for i in purchase["items"]) if purchase else 0
        used = purchase is not None and "coupon_code" in purchase
        spec = SPECS[code] if code else None
        bought.append(purchase is not None)
        revenue.append(gross)
        discount.append(
            offer_discount(spec.kind, spec.value, gross, units) if used and spec else 0.0
        )
    return {
        "p_purchase": np.array(bought, dtype=float),
        "expected_revenue": np.array(revenue),
        "expected_discount": np.array(discount),
    }


@pytest.mark.parametrize("code", [None, *SPECS])
def test_truth_agrees_with_simulated_outcomes(
    big_population: Population, make_offer: OfferFactory, code: str | None
) -> None:
    users = list(big_population.users[:2000])
    simulated = _simulate(users, big_population, code, make_offer)
    rows = [action_truth(u, SPECS[code] if code else None) for u in users]
    for name, outcome in simulated.items():
        expected = np.mean([getattr(row, name) for row in rows])
        standard_error = outcome.std() / math.sqrt(len(users))
        assert abs(outcome.mean() - expected) < 4 * standard_error + 1e-9, (
            name,
            outcome.mean(),
            expected,
        )


@pytest.mark.parametrize(
    ("kind", "code"),
    [(ResponseType.PERSUADABLE, "pct20"), (ResponseType.SLEEPING_DOG, "pct10")],
)
def test_simulated_uplift_has_the_truths_sign_and_size(
    big_population: Population, make_offer: OfferFactory, kind: ResponseType, code: str
) -> None:
    users = _of_type(big_population, kind)[:1000]
    treated = _simulate(users, big_population, code, make_offer)["p_purchase"]
    control = _simulate(users, big_population, None, make_offer)["p_purchase"]
    simulated = treated.mean() - control.mean()
    expected = np.mean([_uplift(u, code) for u in users])
    standard_error = math.sqrt((treated.var() + control.var()) / len(users))
    assert abs(simulated - expected) < 4 * standard_error
    assert np.sign(simulated) == np.sign(expected) and abs(simulated) > 2 * standard_error

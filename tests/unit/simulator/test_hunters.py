"""Coupon hunters: absent by default, the others untouched when present, and what they are."""

from __future__ import annotations

import math

from schemas.events import EventType
from simulator.behaviour import PUBLIC_CODE
from simulator.population import ResponseType, build_population
from simulator.shop import Shop
from simulator.truth import action_truth
from streams.catalogue import DEFAULT_CATALOGUE
from tests.unit.simulator.conftest import T0, OfferFactory

DAY_MS = 86_400_000


def test_no_hunters_is_the_population_of_before_and_hunters_leave_the_others_alone() -> None:
    plain = build_population(2000, seed=7)
    assert build_population(2000, seed=7, coupon_hunters=0.0) == plain
    hunted = build_population(2000, seed=7, coupon_hunters=0.05)
    hunters = [u for u in hunted.users if u.response_type is ResponseType.COUPON_HUNTER]
    assert 60 < len(hunters) < 140
    hunter_ids = {u.user_id for u in hunters}
    assert [u for u in hunted.users if u.user_id not in hunter_ids] == [
        u for u in plain.users if u.user_id not in hunter_ids
    ]
    assert all(u.public_code_use == 0 for u in plain.users)


def test_hunters_pay_with_a_public_code_and_the_others_never_do() -> None:
    population = build_population(1500, seed=4, coupon_hunters=0.1)
    shop = Shop(population, start_ms=T0, run_id="h", seed=4)
    hunters = {u.user_id for u in population.users if u.response_type is ResponseType.COUPON_HUNTER}
    bought = [e for e in shop.advance_events(T0 + 14 * DAY_MS) if e.type is EventType.PURCHASE]
    by_hunters = [e for e in bought if e.user_id in hunters]
    coded = sum(e.coupon_code == PUBLIC_CODE for e in by_hunters)
    assert len(by_hunters) > 100 and coded / len(by_hunters) > 0.8
    assert all(e.coupon_code is None for e in bought if e.user_id not in hunters)


def test_a_hunters_click_takes_the_code_and_opens_no_session(make_offer: OfferFactory) -> None:
    population = build_population(400, seed=2, coupon_hunters=0.5)
    shop = Shop(population, start_ms=T0, run_id="c", seed=2)
    hunters = [u.user_id for u in population.users if u.response_type is ResponseType.COUPON_HUNTER]
    for user_id in hunters:
        shop.receive_offer(make_offer(user_id, created_at=T0), T0)
    clicks = [
        e for e in shop.advance_events(T0 + 6 * 3_600_000) if e.type is EventType.OFFER_CLICKED
    ]
    assert len(clicks) > 50 and all(e.session_id is None for e in clicks)


def test_an_offer_to_a_hunter_buys_nothing_and_costs_its_discount() -> None:
    population = build_population(3000, seed=5, coupon_hunters=0.05)
    hunters = [u for u in population.users if u.response_type is ResponseType.COUPON_HUNTER]
    for user in hunters:
        none = action_truth(user, None, in_session=True)
        assert none.expected_discount > 0  # the public code they pay with anyway
        for offer in DEFAULT_CATALOGUE:
            row = action_truth(user, offer, in_session=True)
            assert math.isclose(row.p_purchase, none.p_purchase, rel_tol=1e-12)
            if offer.kind != "bundle":  # a bundle's nudge can add a line, as for anyone
                assert row.expected_profit < none.expected_profit, (user.user_id, offer.code)


def test_a_coupon_one_hunter_receives_is_used_by_the_other_accounts_of_the_ring(
    make_offer: OfferFactory,
) -> None:
    population = build_population(600, seed=9, coupon_hunters=0.5)
    shop = Shop(population, start_ms=T0, run_id="r", seed=9)
    rings: dict[int, list[str]] = {}
    for u in population.users:
        if u.ring >= 0:
            rings.setdefault(u.ring, []).append(u.user_id)
    assert {len(accounts) for accounts in rings.values()} <= {1, 2, 3}
    coupons: dict[str, tuple[str, set[str]]] = {}  # coupon -> (receiver, its ring)
    for accounts in rings.values():
        offer = make_offer(accounts[0], code="pct20", created_at=T0)
        if shop.receive_offer(offer, T0).value == "shown":
            coupons[offer.coupon_code] = (accounts[0], set(accounts))
    bought = [e for e in shop.advance_events(T0 + 47 * 3_600_000) if e.type is EventType.PURCHASE]
    ours = [e for e in bought if e.coupon_code in coupons]
    assert all(e.user_id in coupons[e.coupon_code or ""][1] for e in ours)  # never outside the ring
    passed_on = [e for e in ours if e.user_id != coupons[e.coupon_code or ""][0]]
    assert len(passed_on) > 10

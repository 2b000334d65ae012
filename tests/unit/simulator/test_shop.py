"""The session model: valid, ordered, reproducible events, and offers handled like a real
notification service would (once per offer_id, never after expiry)."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from schemas import JSON_SCHEMA_DIR
from simulator.population import Population
from simulator.shop import OfferReceipt, Shop
from tests.unit.simulator.conftest import HOUR_MS, T0, OfferFactory

DAY_MS = 24 * HOUR_MS
VALIDATOR = Draft202012Validator(
    json.loads((JSON_SCHEMA_DIR / "clickstream-event.schema.json").read_text())
)


def _shop(population: Population, seed: int = 1) -> Shop:
    return Shop(population, start_ms=T0, run_id="t", seed=seed)


def _by_user(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    users: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        users[event["user_id"]].append(event)
    return users


def _gross(purchase: dict[str, Any]) -> float:
    total: float = sum(line["price"] * line["quantity"] for line in purchase["items"])
    return round(total, 2)


def test_same_seed_same_events_other_seed_other_events(population: Population) -> None:
    first = _shop(population).advance(T0 + DAY_MS)
    assert first == _shop(population).advance(T0 + DAY_MS)
    assert first != _shop(population, seed=2).advance(T0 + DAY_MS)


def test_advancing_in_steps_gives_the_same_stream(population: Population) -> None:
    whole = _shop(population).advance(T0 + DAY_MS)
    shop = _shop(population)
    stepped = [e for t in range(T0, T0 + DAY_MS, 60_000) for e in shop.advance(t + 60_000)]
    assert stepped == whole


def test_every_event_follows_the_json_schema(
    population: Population, make_offer: OfferFactory
) -> None:
    shop = _shop(population)
    for user in population.users[::2]:
        shop.receive_offer(make_offer(user.user_id, "pct20", created_at=T0), T0)
    events = shop.advance(T0 + DAY_MS)
    assert {e["type"] for e in events} == {
        "search",
        "view",
        "add_to_cart",
        "remove_from_cart",
        "purchase",
        "offer_shown",
        "offer_clicked",
    }
    assert any("coupon_code" in e for e in events)
    errors = [(e, err.message) for e in events for err in VALIDATOR.iter_errors(e)]
    assert errors == []
    assert len({e["event_id"] for e in events}) == len(events)


def test_time_order_and_whole_sessions_per_user(population: Population) -> None:
    events = _shop(population).advance(T0 + 2 * DAY_MS)
    assert all(a["ts"] <= b["ts"] for a, b in itertools.pairwise(events))
    assert all(T0 <= e["ts"] <= T0 + 2 * DAY_MS for e in events)
    for user_events in _by_user(events).values():
        finished: set[str] = set()
        current = None
        for event in user_events:
            session = event.get("session_id")
            if session != current:
                # A user's sessions never interleave: a session once left never comes back.
                assert session not in finished
                if current is not None:
                    finished.add(current)
                current = session


def test_gaps_within_a_session_are_seconds_to_minutes(population: Population) -> None:
    events = _shop(population).advance(T0 + DAY_MS)
    sessions: dict[str, list[int]] = defaultdict(list)
    for event in events:
        sessions[event["session_id"]].append(event["ts"])
    gaps = [b - a for times in sessions.values() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1_000 and max(gaps) <= 15 * 60_000
    lengths = sorted(times[-1] - times[0] for times in sessions.values())
    assert 60_000 < lengths[len(lengths) // 2] < 20 * 60_000  # median session: minutes


def test_a_purchase_pays_for_its_cart(population: Population) -> None:
    events = _shop(population).advance(T0 + 3 * DAY_MS)
    purchases = [e for e in events if e["type"] == "purchase"]
    assert len(purchases) > 20
    for purchase in purchases:
        assert purchase["items"] and purchase["order_total"] == _gross(purchase)
        assert "coupon_code" not in purchase  # no offers, no coupons
    assert len({p["order_id"] for p in purchases}) == len(purchases)


def test_an_offer_is_shown_at_once_and_then_maybe_clicked(
    population: Population, make_offer: OfferFactory
) -> None:
    shop = _shop(population)
    shop.advance(T0 + HOUR_MS)
    receipts = [
        shop.receive_offer(make_offer(u.user_id, created_at=T0), T0 + HOUR_MS)
        for u in population.users
    ]
    assert set(receipts) == {OfferReceipt.SHOWN, OfferReceipt.NOT_REACHED}
    shown_now = [e for e in shop.advance(T0 + HOUR_MS) if e["type"] == "offer_shown"]
    assert len(shown_now) == receipts.count(OfferReceipt.SHOWN) == shop.stats.offers_shown
    assert all(e["ts"] == T0 + HOUR_MS for e in shown_now)
    later = shop.advance(T0 + 3 * HOUR_MS)
    clicked = [e for e in later if e["type"] == "offer_clicked"]
    assert 0 < len(clicked) < len(shown_now)
    assert {e["offer_id"] for e in clicked} <= {e["offer_id"] for e in shown_now}
    # A click opens a fresh session (or joins the running one): the user browses after it.
    browsed = [
        any(e["session_id"] == c["session_id"] and e["ts"] > c["ts"] for e in later)
        for c in clicked
    ]
    assert sum(browsed) >= 0.8 * len(clicked)


def test_the_same_offer_twice_is_applied_once(
    population: Population, make_offer: OfferFactory
) -> None:
    offers = [make_offer(u.user_id, created_at=T0) for u in population.users]
    once, twice = _shop(population), _shop(population)
    for shop in (once, twice):
        shop.advance(T0 + HOUR_MS)
        for offer in offers:
            shop.receive_offer(offer, T0 + HOUR_MS)
    twice.advance(T0 + 2 * HOUR_MS)
    once.advance(T0 + 2 * HOUR_MS)
    assert {twice.receive_offer(offer, T0 + 2 * HOUR_MS) for offer in offers} == {
        OfferReceipt.DUPLICATE
    }
    assert once.advance(T0 + 2 * DAY_MS) == twice.advance(T0 + 2 * DAY_MS)


@pytest.mark.parametrize(
    ("created_at", "ttl_hours", "user_id", "receipt"),
    [
        (T0, 1.0, "u00001", OfferReceipt.EXPIRED),  # expired before it arrives at T0 + 2 h
        (T0 - HOUR_MS, 48.0, "u00001", OfferReceipt.STALE),  # decided before the run began
        (T0, 48.0, "u99999", OfferReceipt.UNKNOWN_USER),
    ],
)
def test_offers_that_cannot_apply_change_nothing(
    population: Population,
    make_offer: OfferFactory,
    created_at: int,
    ttl_hours: float,
    user_id: str,
    receipt: OfferReceipt,
) -> None:
    plain, offered = _shop(population), _shop(population)
    plain.advance(T0 + 2 * HOUR_MS)
    offered.advance(T0 + 2 * HOUR_MS)
    offer = make_offer(user_id, created_at=created_at, ttl_hours=ttl_hours)
    assert offered.receive_offer(offer, T0 + 2 * HOUR_MS) is receipt
    assert offered.advance(T0 + DAY_MS) == plain.advance(T0 + DAY_MS)


@pytest.mark.parametrize("code", ["pct20", "free_shipping", "bundle15"])
def test_coupon_purchases_apply_the_offer_only_while_active(
    population: Population, make_offer: OfferFactory, code: str
) -> None:
    shop = _shop(population)
    offers = {
        u.user_id: make_offer(u.user_id, code, created_at=T0, ttl_hours=24.0)
        for u in population.users
    }
    for offer in offers.values():
        shop.receive_offer(offer, T0)
    purchases = [e for e in shop.advance(T0 + 3 * DAY_MS) if e["type"] == "purchase"]
    with_coupon = [p for p in purchases if "coupon_code" in p]
    assert len(with_coupon) > 5
    assert len({p["user_id"] for p in with_coupon}) == len(with_coupon)  # single use
    for purchase in with_coupon:
        offer = offers[purchase["user_id"]]
        assert purchase["coupon_code"] == offer.coupon_code
        assert purchase["offer_id"] == offer.offer_id
        assert purchase["ts"] < offer.expires_at
        gross = _gross(purchase)
        if code == "free_shipping":
            assert purchase["order_total"] == gross  # the shop pays the shipping
        else:
            assert purchase["order_total"] == pytest.approx(
                gross * (1 - offer.value / 100), abs=0.01
            )
        if code == "bundle15":
            assert sum(line["quantity"] for line in purchase["items"]) >= 2
    shown = shop.stats.offers_shown
    assert shop.stats.coupon_purchases == len(with_coupon) <= shown

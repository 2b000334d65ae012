"""The session model: users visit, browse, fill carts, buy or abandon, and react to offers.

A :class:`Shop` is a discrete-event simulation driven by an explicit sim time: ``advance(t)``
returns every clickstream event up to ``t`` in time order, ``receive_offer(offer, now)``
hands it an offer from the engine. No I/O, no wall clock; every user draws from their own
seeded random streams, so a user's behaviour does not depend on what happens to others.

Sessions start as a Poisson process at the user's rate (busier in the evening, UTC). A
session searches, views items mostly from preferred categories, adds some to the cart and
sometimes removes one, with gaps of seconds to minutes (median 25 s), then checks out: it
buys with the probability of ``simulator.behaviour.session_conversion`` at that moment, or
abandons (the cart stays for a later session). A purchase tops the cart up or trims it to the
order's size first. A session arriving while another runs starts when that one ends.
Coupon hunters (``simulator.population.ResponseType.COUPON_HUNTER``) wait for a coupon before
buying, pay with a public code when none comes, and share every coupon across the accounts
of their ring.

>>> from simulator.population import build_population
>>> shop = Shop(build_population(50, seed=1), start_ms=1_700_000_000_000, run_id="r1", seed=1)
>>> events = shop.advance(1_700_000_000_000 + 86_400_000)
>>> len(events) > 50, events[0]["event_id"], all(
...     a["ts"] <= b["ts"] for a, b in zip(events, events[1:]))
(True, 'r1-0', True)
"""

from __future__ import annotations

import heapq
import itertools
import math
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from schemas.events import ClickEvent, EventType, LineItem
from schemas.offers import Offer
from simulator.behaviour import (
    BUNDLE_NUDGE,
    COUPON_USE,
    PUBLIC_CODE,
    PUBLIC_CODE_KIND,
    PUBLIC_CODE_VALUE,
    REACH,
    complement_chances,
    offer_discount,
    offer_terms,
    reduces_order_total,
    session_conversion,
)
from simulator.population import (
    HUNTER_PATIENCE,
    QUANTITY_CDF,
    Population,
    ResponseType,
    UserTraits,
)

DAY_MS = 86_400_000
#: Session arrivals swing by this share around the mean over the day, peaking at 20:00 UTC.
DIURNAL_AMPLITUDE = 0.6
PEAK_HOUR_UTC = 20
GAP_MEDIAN_MS = 25_000
GAP_SIGMA = 0.9
GAP_RANGE_MS = (1_000, 900_000)
CLICK_DELAY_MEDIAN_MS = 180_000
CLICK_DELAY_RANGE_MS = (10_000, 7_200_000)
SEARCH_FIRST = 0.35
SEARCH_BETWEEN = 0.1
MAX_CART_LINES = 8


class OfferReceipt(StrEnum):
    """What the shop did with an offer from the engine."""

    SHOWN = "shown"
    #: The notification did not reach the user (probability ``1 - REACH``).
    NOT_REACHED = "not_reached"
    #: Its offer_id was seen before: a redelivery, applied once.
    DUPLICATE = "duplicate"
    EXPIRED = "expired"
    UNKNOWN_USER = "unknown_user"
    #: Created before this simulation started: left over from an earlier run.
    STALE = "stale"


@dataclass(slots=True)
class ShopStats:
    """Running counts of what the shop has emitted and received."""

    events: int = 0
    sessions: int = 0
    purchases: int = 0
    coupon_purchases: int = 0
    offers_shown: int = 0
    offers_clicked: int = 0
    receipts: Counter[OfferReceipt] = field(default_factory=Counter)


@dataclass(slots=True)
class UserLedger:
    """One user's realised history: observable counts, and money before/after coupons.

    ``revenue`` is the value of the orders before any coupon (what the margin applies to);
    ``discount`` what coupons cost the shop (free shipping included).
    """

    sessions: int = 0
    orders: int = 0
    offers_shown: int = 0
    offers_clicked: int = 0
    #: Orders paid with one of the engine's coupons, and with a public code.
    coupon_orders: int = 0
    public_code_orders: int = 0
    revenue: float = 0.0
    discount: float = 0.0

    def profit(self, gross_margin: float) -> float:
        return gross_margin * self.revenue - self.discount


@dataclass(slots=True)
class _HeldOffer:
    offer: Offer
    used: bool = False


@dataclass(slots=True)
class _Shopper:
    traits: UserTraits
    rng: np.random.Generator
    response_rng: np.random.Generator
    cart: list[tuple[int, int]] = field(default_factory=list)  # (item index, quantity)
    session_id: str | None = None
    queued_sessions: int = 0
    offers: list[_HeldOffer] = field(default_factory=list)
    #: A coupon hunter's purchases they mean to make and have not made yet, and how many
    #: checkouts the oldest has waited for a coupon.
    needs: int = 0
    waited: int = 0
    #: What the shop can see of this user so far, and what they earned it.
    ledger: UserLedger = field(default_factory=lambda: UserLedger())

    def active_offers(self, ts: int) -> list[_HeldOffer]:
        self.offers = [h for h in self.offers if ts < h.offer.expires_at]
        return [h for h in self.offers if not h.used]


# Scheduled happenings, one heap entry each: (ts, sequence, user index, action, payload).
_ARRIVAL, _QUEUED, _SEARCH, _VIEW, _ADD, _REMOVE, _CHECKOUT, _PURCHASE, _SHOWN, _CLICK = range(10)


class Shop:
    """All users of a population over sim time; see the module docstring."""

    def __init__(self, population: Population, *, start_ms: int, run_id: str, seed: int) -> None:
        self.start_ms = start_ms
        self.now = start_ms
        self.run_id = run_id
        self.stats = ShopStats()
        self._assortment = population.assortment
        self._category_index = {c: k for k, c in enumerate(population.assortment.categories)}
        root = np.random.SeedSequence(seed, spawn_key=(1,))  # population.py uses (0,)
        behaviour_seed, response_seed = root.spawn(2)
        n = len(population.users)
        self._shoppers = [
            _Shopper(traits, np.random.default_rng(b), np.random.default_rng(r))
            for traits, b, r in zip(
                population.users, behaviour_seed.spawn(n), response_seed.spawn(n), strict=True
            )
        ]
        self._index = {s.traits.user_id: i for i, s in enumerate(self._shoppers)}
        #: A hunter's other accounts (shopper indices), which use the coupons it receives.
        rings: dict[int, list[int]] = {}
        for i, shopper in enumerate(self._shoppers):
            if shopper.traits.ring >= 0:
                rings.setdefault(shopper.traits.ring, []).append(i)
        self._mates = {i: [j for j in ring if j != i] for ring in rings.values() for i in ring}
        self._seen_offers: set[str] = set()
        self._heap: list[tuple[int, int, int, int, Any]] = []
        self._sequence = itertools.count()
        self._event_ids = itertools.count()
        self._session_ids = itertools.count()
        self._order_ids = itertools.count()
        for i, shopper in enumerate(self._shoppers):
            self._push(self._next_arrival(shopper, start_ms), i, _ARRIVAL)

    # --- public -------------------------------------------------------------------------------

    def advance(self, until_ms: int) -> list[dict[str, Any]]:
        """Every event with ``ts <= until_ms`` not returned before, in time order (wire dicts)."""
        return [event.to_json_dict() for event in self.advance_events(until_ms)]

    def advance_events(self, until_ms: int) -> list[ClickEvent]:
        """As :meth:`advance`, as typed events (for in-process loops; same draws)."""
        out: list[ClickEvent] = []
        heap = self._heap
        while heap and heap[0][0] <= until_ms:
            ts, _, i, action, payload = heapq.heappop(heap)
            self._handle(ts, i, action, payload, out)
        self.now = max(self.now, until_ms)
        self.stats.events += len(out)
        return out

    def receive_offer(self, offer: Offer, now_ms: int) -> OfferReceipt:
        """Take an offer at sim time ``now_ms``; it is shown at once if it reaches the user.

        An offer_id is applied once however often it is delivered, as a notification service
        with an idempotency key would.
        """
        receipt = self._receipt(offer, now_ms)
        self.stats.receipts[receipt] += 1
        return receipt

    def user_index(self, user_id: str) -> int | None:
        return self._index.get(user_id)

    def ledger(self, index: int) -> UserLedger:
        """User ``index``'s realised history (by population order)."""
        return self._shoppers[index].ledger

    # --- offers -------------------------------------------------------------------------------

    def _receipt(self, offer: Offer, now_ms: int) -> OfferReceipt:
        if offer.offer_id in self._seen_offers:
            return OfferReceipt.DUPLICATE
        self._seen_offers.add(offer.offer_id)
        i = self._index.get(offer.user_id)
        if i is None:
            return OfferReceipt.UNKNOWN_USER
        if offer.created_at < self.start_ms:
            return OfferReceipt.STALE
        now = max(now_ms, self.now)
        if now >= offer.expires_at:
            return OfferReceipt.EXPIRED
        shopper = self._shoppers[i]
        if shopper.response_rng.random() >= REACH:
            return OfferReceipt.NOT_REACHED
        shopper.offers.append(_HeldOffer(offer))
        for mate in self._mates.get(i, ()):
            self._shoppers[mate].offers.append(_HeldOffer(offer))  # passed on, not shown
        self._push(now, i, _SHOWN, offer)
        return OfferReceipt.SHOWN

    # --- the event loop -----------------------------------------------------------------------

    def _push(self, ts: int, i: int, action: int, payload: Any = None) -> None:
        heapq.heappush(self._heap, (ts, next(self._sequence), i, action, payload))

    def _handle(self, ts: int, i: int, action: int, payload: Any, out: list[ClickEvent]) -> None:
        shopper = self._shoppers[i]
        if action == _ARRIVAL:
            self._push(self._next_arrival(shopper, ts), i, _ARRIVAL)
            self._start_or_queue(shopper, i, ts)
        elif action == _QUEUED:
            self._start_or_queue(shopper, i, ts)
        elif action == _SEARCH:
            out.append(self._event(shopper, ts, EventType.SEARCH, query=payload))
        elif action in (_VIEW, _ADD, _REMOVE):
            item, quantity = payload
            out.append(self._item_event(shopper, ts, action, item, quantity))
        elif action == _CHECKOUT:
            self._checkout(shopper, i, ts)
        elif action == _PURCHASE:
            out.append(self._event(shopper, ts, EventType.PURCHASE, **payload))
            self.stats.purchases += 1
            self.stats.coupon_purchases += "coupon_code" in payload
            self._end_session(shopper, i, ts)
        elif action == _SHOWN:
            out.append(self._event(shopper, ts, EventType.OFFER_SHOWN, offer_id=payload.offer_id))
            self.stats.offers_shown += 1
            shopper.ledger.offers_shown += 1
            if shopper.response_rng.random() < shopper.traits.profile.click:
                delay = _lognormal_ms(shopper.response_rng, CLICK_DELAY_MEDIAN_MS, 1.0)
                self._push(ts + _clip(delay, CLICK_DELAY_RANGE_MS), i, _CLICK, payload)
        elif action == _CLICK:
            if shopper.session_id is None and shopper.traits.profile.click_opens_session:
                # The click opens the shop: a fresh session right after it.
                shopper.session_id = self._new_session_id(shopper)
                self._plan_session(shopper, i, ts + self._gap(shopper))
            out.append(self._event(shopper, ts, EventType.OFFER_CLICKED, offer_id=payload.offer_id))
            self.stats.offers_clicked += 1
            shopper.ledger.offers_clicked += 1

    def _next_arrival(self, shopper: _Shopper, after_ms: int) -> int:
        """Next session start of a Poisson process with a daily cycle (by thinning)."""
        rng = shopper.rng
        peak_rate = shopper.traits.sessions_per_day * (1 + DIURNAL_AMPLITUDE) / DAY_MS
        t = float(after_ms)
        while True:
            t += rng.exponential(1.0 / peak_rate)
            phase = 2 * math.pi * ((t % DAY_MS) / DAY_MS - PEAK_HOUR_UTC / 24)
            if rng.random() * (1 + DIURNAL_AMPLITUDE) < 1 + DIURNAL_AMPLITUDE * math.cos(phase):
                return int(t)

    # --- sessions -----------------------------------------------------------------------------

    def _start_or_queue(self, shopper: _Shopper, i: int, ts: int) -> None:
        if shopper.session_id is not None:
            shopper.queued_sessions += 1
            return
        shopper.session_id = self._new_session_id(shopper)
        self._plan_session(shopper, i, ts)

    def _new_session_id(self, shopper: _Shopper) -> str:
        self.stats.sessions += 1
        shopper.ledger.sessions += 1
        return f"{self.run_id}-s{next(self._session_ids)}"

    def _plan_session(self, shopper: _Shopper, i: int, ts: int) -> None:
        """Schedule a session's browsing from ``ts``, then its checkout decision.

        The cart changes now, as planned: nothing else touches it before the checkout.
        """
        rng, traits, cart = shopper.rng, shopper.traits, shopper.cart
        t = ts
        if rng.random() < SEARCH_FIRST:
            self._push(t, i, _SEARCH, self._query(shopper))
            t += self._gap(shopper)
        for _ in range(1 + int(rng.poisson(traits.views_per_session - 1.0))):
            if rng.random() < SEARCH_BETWEEN:
                self._push(t, i, _SEARCH, self._query(shopper))
                t += self._gap(shopper)
            item = self._pick_item(shopper)
            self._push(t, i, _VIEW, (item, 1))
            t += self._gap(shopper)
            if len(cart) < MAX_CART_LINES and rng.random() < traits.add_to_cart_rate:
                line = (item, _quantity(rng))
                cart.append(line)
                self._push(t, i, _ADD, line)
                t += self._gap(shopper)
                if rng.random() < traits.remove_rate:
                    self._push(t, i, _REMOVE, cart.pop(int(rng.random() * len(cart))))
                    t += self._gap(shopper)
        self._push(t, i, _CHECKOUT)

    def _checkout(self, shopper: _Shopper, i: int, ts: int) -> None:
        """Buy with the probability of this moment's offers, or abandon the cart."""
        rng, traits = shopper.rng, shopper.traits
        active = shopper.active_offers(ts)
        p = session_conversion(
            traits,
            [
                offer_terms(
                    traits,
                    h.offer.kind,
                    h.offer.value,
                    self._scope(traits, h.offer),
                    self._complement(h.offer),
                )
                for h in active
            ],
        )
        buys = rng.random() < p
        if traits.response_type is ResponseType.COUPON_HUNTER:
            buys = self._hunter_buys(shopper, buys, active)
        if not buys:
            self._end_session(shopper, i, ts)
            return
        cart, t = shopper.cart, ts
        size = 1 + int(rng.poisson(traits.extra_lines))
        while len(cart) > size:
            self._push(t, i, _REMOVE, cart.pop(int(rng.random() * len(cart))))
            t += self._gap(shopper)
        while len(cart) < size:
            t = self._add_line(shopper, i, t)
        nudged = any(h.offer.kind == "bundle" and h.offer.target_category is None for h in active)
        if nudged and sum(q for _, q in cart) < 2 and rng.random() < BUNDLE_NUDGE:
            t = self._add_line(shopper, i, t)
        for h in active:  # a complement bundle: a line of its category, if the order has none
            target = self._complement(h.offer)
            if target is None or target in self._categories_of(cart):
                continue
            if rng.random() < complement_chances(traits, target)[1]:
                t = self._add_line(shopper, i, t, target)
        self._push(t, i, _PURCHASE, self._order(shopper, active))
        shopper.cart = []

    def _hunter_buys(self, shopper: _Shopper, wants: bool, active: list[_HeldOffer]) -> bool:
        """A coupon hunter buys what they need, when they need it, but waits for one of our
        coupons: up to ``HUNTER_PATIENCE`` checkouts, then buys with a public code. Every
        need is bought once, coupon or not, so over time an offer changes when they buy,
        never how much; within a 48-hour window it looks as if it made them buy."""
        shopper.needs += wants
        if not shopper.needs:
            return False
        if active or shopper.waited >= HUNTER_PATIENCE or shopper.needs > 1:
            shopper.needs -= 1
            shopper.waited = 0
            return True
        shopper.waited += 1
        return False

    def _add_line(self, shopper: _Shopper, i: int, t: int, category: int | None = None) -> int:
        item = self._pick_item(shopper, category)
        self._push(t, i, _VIEW, (item, 1))
        t += self._gap(shopper)
        line = (item, _quantity(shopper.rng))
        shopper.cart.append(line)
        self._push(t, i, _ADD, line)
        return t + self._gap(shopper)

    def _order(self, shopper: _Shopper, active: list[_HeldOffer]) -> dict[str, Any]:
        """The purchase fields: the cart's lines merged by item, and the best coupon if used."""
        assortment = self._assortment
        quantities: dict[int, int] = {}
        for item, quantity in shopper.cart:
            quantities[item] = quantities.get(item, 0) + quantity
        items = tuple(
            LineItem(
                assortment.item_ids[item],
                assortment.item_price[item],
                quantity,
                assortment.categories[assortment.item_category[item]],
            )
            for item, quantity in quantities.items()
        )
        gross = round(sum(line.price * line.quantity for line in items), 2)
        units = sum(quantities.values())
        order: dict[str, Any] = {
            "order_id": f"{self.run_id}-o{next(self._order_ids)}",
            "order_total": gross,
            "items": items,
        }
        savings = [
            (
                offer_discount(
                    "complement" if _is_complement(h.offer) else h.offer.kind,
                    h.offer.value,
                    _covered(items, h.offer),
                    units,
                ),
                h,
            )
            for h in active
        ]
        applicable = [(d, h) for d, h in savings if d > 0]
        ledger = shopper.ledger
        ledger.orders += 1
        ledger.revenue += gross
        if applicable and shopper.response_rng.random() < COUPON_USE:
            discount, held = max(applicable, key=lambda pair: pair[0])
            held.used = True
            ledger.discount += discount
            ledger.coupon_orders += 1
            if reduces_order_total(held.offer.kind):
                order["order_total"] = round(max(0.0, gross - discount), 2)
            order["coupon_code"] = held.offer.coupon_code
            order["offer_id"] = held.offer.offer_id
        # Drawn only for users who ever use one: the others' streams stay as they were.
        elif shopper.traits.public_code_use and (
            shopper.response_rng.random() < shopper.traits.public_code_use
        ):
            discount = offer_discount(PUBLIC_CODE_KIND, PUBLIC_CODE_VALUE, gross, units)
            ledger.discount += discount
            ledger.public_code_orders += 1
            order["order_total"] = round(max(0.0, gross - discount), 2)
            order["coupon_code"] = PUBLIC_CODE
        return order

    def _categories_of(self, cart: list[tuple[int, int]]) -> set[int]:
        return {self._assortment.item_category[item] for item, _ in cart}

    def _complement(self, offer: Offer) -> int | None:
        """A complement bundle's category (its index), None for any other offer."""
        if not _is_complement(offer):
            return None
        return self._category_index.get(offer.target_category or "", -1)

    def _scope(self, traits: UserTraits, offer: Offer) -> float:
        """The share of the user's orders the offer's discount covers, as they expect it."""
        if offer.target_category is None:
            return 1.0
        return traits.spend_share(self._category_index.get(offer.target_category, -1))

    def _end_session(self, shopper: _Shopper, i: int, ts: int) -> None:
        shopper.session_id = None
        if shopper.queued_sessions:
            shopper.queued_sessions -= 1
            self._push(ts + self._gap(shopper), i, _QUEUED)

    # --- small draws --------------------------------------------------------------------------

    def _gap(self, shopper: _Shopper) -> int:
        return _clip(_lognormal_ms(shopper.rng, GAP_MEDIAN_MS, GAP_SIGMA), GAP_RANGE_MS)

    def _pick_category(self, shopper: _Shopper) -> int:
        cdf = shopper.traits.category_cdf
        return min(bisect_right(cdf, shopper.rng.random()), len(cdf) - 1)

    def _pick_item(self, shopper: _Shopper, category: int | None = None) -> int:
        """An item of ``category``, or of a category drawn from the user's tastes."""
        if category is None:
            category = self._pick_category(shopper)
        items = self._assortment.category_items[category]
        return items[int(shopper.rng.random() * len(items))]

    def _query(self, shopper: _Shopper) -> str:
        terms = self._assortment.search_terms[self._pick_category(shopper)]
        return terms[int(shopper.rng.random() * len(terms))]

    # --- events -------------------------------------------------------------------------------

    def _event(self, shopper: _Shopper, ts: int, kind: EventType, **fields: Any) -> ClickEvent:
        return ClickEvent(
            event_id=f"{self.run_id}-{next(self._event_ids)}",
            user_id=shopper.traits.user_id,
            ts=ts,
            type=kind,
            session_id=shopper.session_id,
            **fields,
        )

    def _item_event(
        self, shopper: _Shopper, ts: int, action: int, item: int, quantity: int
    ) -> ClickEvent:
        assortment = self._assortment
        item_id = assortment.item_ids[item]
        if action == _REMOVE:
            return self._event(
                shopper, ts, EventType.REMOVE_FROM_CART, item_id=item_id, quantity=quantity
            )
        category = assortment.categories[assortment.item_category[item]]
        price = assortment.item_price[item]
        if action == _VIEW:
            return self._event(
                shopper, ts, EventType.VIEW, item_id=item_id, category=category, price=price
            )
        return self._event(
            shopper,
            ts,
            EventType.ADD_TO_CART,
            item_id=item_id,
            category=category,
            price=price,
            quantity=quantity,
        )


def _lognormal_ms(rng: np.random.Generator, median_ms: float, sigma: float) -> float:
    return median_ms * math.exp(sigma * rng.standard_normal())


def _clip(value: float, bounds: tuple[int, int]) -> int:
    return int(min(max(value, bounds[0]), bounds[1]))


def _quantity(rng: np.random.Generator) -> int:
    u = rng.random()
    return 1 + sum(u >= c for c in QUANTITY_CDF[:-1])


def _is_complement(offer: Offer) -> bool:
    """A complement bundle: a bundle on a category (the one the engine paired with the cart)."""
    return offer.kind == "bundle" and offer.target_category is not None


def _covered(items: tuple[LineItem, ...], offer: Offer) -> float:
    """The value of the order's lines an offer's discount applies to: all of them, or a
    category offer's category's (none: the coupon does not apply); a complement bundle's,
    all of them once one is of its category."""
    target = offer.target_category
    if _is_complement(offer):
        held = any(line.category == target for line in items)
        return round(sum(line.price * line.quantity for line in items), 2) if held else 0.0
    return round(
        sum(line.price * line.quantity for line in items if target in (None, line.category)), 2
    )

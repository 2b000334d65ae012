"""Category offers: a discount on the lines of one category, the category chosen from the
user's cart and interest, named by the offer, costed on its share, redeemed only by a purchase
that holds it."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import orjson
import pytest

from schemas import JSON_SCHEMA_DIR
from schemas.decisions import NO_OFFER
from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import OutcomeType
from streams.catalogue import DEFAULT_CATALOGUE, INTEREST, OfferSpec, parse_catalogue
from streams.engine import DecisionEngine, EngineOutput
from streams.errors import ConfigError
from streams.policy import Choice
from streams.user_state import UserState
from tests.unit.conftest import HOUR, FixedOffer, make_engine
from tests.unit.test_engine import KnownEffects

T0 = 1_700_000_000_000
ON_INTEREST = OfferSpec("cat20", "percent_off", 20.0, "20 % off {category}", "C20", INTEREST)
ON_SHOES = OfferSpec("shoes20", "percent_off", 20.0, "20 % off shoes", "S20", "shoes")
CATALOGUE = (*DEFAULT_CATALOGUE, ON_INTEREST, ON_SHOES)
OFFER_SCHEMA = json.loads((JSON_SCHEMA_DIR / "offer.schema.json").read_text())
DECISION_SCHEMA = json.loads((JSON_SCHEMA_DIR / "decision.schema.json").read_text())


def event(n: int, kind: EventType, ts: int, **fields: object) -> ClickEvent:
    return ClickEvent(f"e{n}", "u1", ts, kind, **fields)  # type: ignore[arg-type]


def views_then_cart(category_viewed: str) -> list[ClickEvent]:
    """Three views of ``category_viewed``, then a cart of 60 in bags and 20 in socks."""
    views = [
        event(i, EventType.VIEW, T0 + i, item_id=f"v{i}", category=category_viewed, price=5.0)
        for i in range(3)
    ]
    add = dict(quantity=1)
    return [
        *views,
        event(10, EventType.ADD_TO_CART, T0 + 10, item_id="b", category="bags", price=60.0, **add),
        event(11, EventType.ADD_TO_CART, T0 + 11, item_id="s", category="socks", price=20.0, **add),
    ]


def cart_engine(policy: object = None) -> DecisionEngine:
    """Decisions at cart adds only, over the catalogue with both category offers."""
    return make_engine(policy, catalogue=CATALOGUE, triggers=frozenset({"add_to_cart"}))


def run(engine: DecisionEngine, events: list[ClickEvent]) -> tuple[UserState, EngineOutput]:
    state, out = engine.new_state(), EngineOutput()
    for e in events:
        engine.handle(state, e, out)
    return state, out


def test_a_category_is_only_for_discounts_on_lines_and_a_bad_one_names_its_entry() -> None:
    entry = {"code": "c", "kind": "percent_off", "value": 20, "title": "t", "category": "bags"}
    assert parse_catalogue([entry])[0].category == "bags"
    with pytest.raises(ConfigError, match=r"entry 0 \(c\): only percent_off and fixed_off"):
        parse_catalogue([{**entry, "kind": "free_shipping"}])
    with pytest.raises(ConfigError, match=r"entry 0 \(c\): 'category' must be a short string"):
        parse_catalogue([{**entry, "category": ""}])


def test_the_offer_is_on_the_carts_category_the_user_is_most_drawn_to_and_says_so() -> None:
    # The first cart add decides (the cool-down is an hour): bags alone in the cart.
    _, out = run(cart_engine(FixedOffer("cat20", propensity=1.0)), views_then_cart("socks"))
    (decision,), (offer,) = out.decisions, out.offers
    assert (offer.target_category, offer.title) == ("bags", "20 % off bags")
    assert decision.target_category == "bags"
    jsonschema.validate(orjson.loads(orjson.dumps(offer)), OFFER_SCHEMA)
    jsonschema.validate(orjson.loads(orjson.dumps(decision)), DECISION_SCHEMA)
    # Bags already in the cart when socks come: the socks the user kept viewing win over the
    # bigger line.
    out = bags_first_then_socks(cart_engine(FixedOffer("cat20", propensity=1.0)))
    assert [o.target_category for o in out.offers] == ["socks"]
    # An offer on the whole order names no category.
    _, out = run(cart_engine(FixedOffer("pct10", propensity=1.0)), views_then_cart("socks"))
    assert out.offers[0].target_category is None and out.decisions[0].target_category == ""


def bags_first_then_socks(engine: DecisionEngine) -> EngineOutput:
    """``views_then_cart("socks")`` for a user whose cart already held the bags (added before
    the engine was deciding): a decision point only at the socks."""
    state, out = engine.new_state(), EngineOutput()
    state.features.update("add_to_cart", ts=T0 - 1, category="bags", amount=60.0, item_id="b")
    for e in views_then_cart("socks")[:3] + views_then_cart("socks")[4:]:
        engine.handle(state, e, out)
    return out


class Recorder:
    """Remembers what the engine offered the policy; chooses nothing."""

    def __init__(self) -> None:
        self.offers: list[tuple[str, ...]] = []
        self.scopes: list[dict[str, float]] = []

    def choose(self, context: object) -> Choice:
        self.offers.append(tuple(o.code for o in context.offers))  # type: ignore[attr-defined]
        self.scopes.append(dict(context.scopes))  # type: ignore[attr-defined]
        return Choice(NO_OFFER, 1.0, {}, {})


def test_an_offer_on_a_category_the_cart_lacks_is_not_on_the_table() -> None:
    recorder = Recorder()
    run(cart_engine(recorder), views_then_cart("shoes"))  # a cart of bags: nothing for shoes20
    assert recorder.offers == [("pct10", "pct20", "free_shipping", "bundle15", "cat20")]
    assert recorder.scopes == [{"cat20": 1.0, "shoes20": 0.0}]


def test_a_category_offer_costs_its_share_of_the_order() -> None:
    engine = cart_engine()
    engine.snapshot = replace(engine.snapshot, response=KnownEffects(engine.snapshot.actions))
    out = bags_first_then_socks(engine)
    (d,) = out.decisions
    # The same sure effect: 20 % off socks (a quarter of the cart) gives a quarter away.
    assert d.scores["cat20"] > d.scores["pct20"]
    whole = engine.expected_cost(replace_probs(d), "pct20", d.expected_order_value)
    part = engine.expected_cost(replace_probs(d), "cat20", d.expected_order_value, {"cat20": 0.25})
    assert part == pytest.approx(whole / 4)


def replace_probs(d: object) -> Choice:
    return Choice(NO_OFFER, 1.0, {}, dict(d.purchase_probs))  # type: ignore[attr-defined]


def test_only_a_purchase_holding_the_category_redeems_a_category_offer() -> None:
    engine = cart_engine(FixedOffer("cat20", propensity=1.0))
    state, out = run(engine, views_then_cart("socks"))
    (offer,) = out.offers
    assert offer.target_category == "bags"

    def buy(n: int, category: str) -> ClickEvent:
        line = LineItem("x", 60.0, 1, category)
        return event(
            n,
            EventType.PURCHASE,
            T0 + HOUR + n,
            order_id=f"o{n}",
            order_total=48.0,
            items=(line,),
            coupon_code=offer.coupon_code,
        )

    after = EngineOutput()
    engine.handle(state, buy(20, "shoes"), after)  # the code, but no bags: not redeemed
    assert [o.type for o in after.outcomes] == [OutcomeType.PURCHASE]
    engine.handle(state, buy(21, "bags"), after)
    assert [o.type for o in after.outcomes][1:] == [OutcomeType.PURCHASE, OutcomeType.REDEEMED]

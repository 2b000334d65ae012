"""Complement bundles: a bundle whose discount needs a line of the category the bundle rules
pair with the cart, named by the offer, on the table only where the rules name one, redeemed
only by a purchase that holds it."""

from __future__ import annotations

import pytest

from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import OutcomeType
from streams.bundles import BundleRule, BundleRules
from streams.catalogue import COMPLEMENT, DEFAULT_CATALOGUE, OfferSpec, parse_catalogue
from streams.engine import DecisionEngine, EngineOutput
from streams.errors import ConfigError, RulesError
from tests.unit.conftest import HOUR, FixedOffer, make_engine
from tests.unit.test_category_offers import T0, Recorder, event, run, views_then_cart

PAIR = OfferSpec("pair15", "bundle", 15.0, "15 % off when you add {category}", "PB", COMPLEMENT)
#: Bags go with wallets; socks are bought with bags more often, but with anything.
RULES = BundleRules(
    7,
    0,
    T0,
    1000,
    (
        BundleRule("bags", "wallets", 120, 0.12, 0.4, 2.5),
        BundleRule("bags", "socks", 150, 0.15, 0.5, 1.2),
        BundleRule("bags", "umbrellas", 30, 0.03, 0.1, 0.8),  # bought together by chance
        BundleRule("shoes", "laces", 90, 0.09, 0.9, 4.0),  # shoes: not in the cart
    ),
)


def bundle_engine(policy: object = None, rules: BundleRules | None = RULES) -> DecisionEngine:
    engine = make_engine(
        policy, catalogue=(*DEFAULT_CATALOGUE, PAIR), triggers=frozenset({"add_to_cart"})
    )
    engine.rules = rules
    return engine


def test_only_a_bundle_can_be_on_the_complement() -> None:
    entry = {"code": "p", "kind": "bundle", "value": 15, "title": "t", "category": COMPLEMENT}
    assert parse_catalogue([entry])[0].category == COMPLEMENT
    with pytest.raises(ConfigError, match=r"entry 0 \(p\): only a bundle can be on 'complement'"):
        parse_catalogue([{**entry, "kind": "percent_off"}])
    with pytest.raises(ConfigError, match=r"entry 0 \(p\): only percent_off and fixed_off"):
        parse_catalogue([{**entry, "category": "bags"}])


def test_the_bundle_proposes_what_the_rules_pair_with_the_cart_and_names_it() -> None:
    _, out = run(bundle_engine(FixedOffer("pair15", propensity=1.0)), views_then_cart("socks"))
    (decision,), (offer,) = out.decisions, out.offers
    # Bags in the cart: wallets (the highest lift to a category the cart lacks), not socks
    # (more often bought with bags, but more often bought at all), not laces (from shoes).
    assert (offer.target_category, offer.title) == ("wallets", "15 % off when you add wallets")
    assert decision.target_category == "wallets"


def test_without_rules_or_a_rule_for_the_cart_the_bundle_is_not_on_the_table() -> None:
    for rules in (None, BundleRules(1, 0, T0, 10, (RULES.rules[3],))):
        recorder = Recorder()
        run(bundle_engine(recorder, rules), views_then_cart("socks"))
        assert "pair15" not in recorder.offers[0]
        assert recorder.scopes[0] == {"pair15": 0.0}
    recorder = Recorder()
    run(bundle_engine(recorder), views_then_cart("socks"))
    assert "pair15" in recorder.offers[0] and recorder.scopes[0] == {"pair15": 1.0}


def test_only_a_purchase_holding_the_complement_redeems_the_bundle() -> None:
    engine = bundle_engine(FixedOffer("pair15", propensity=1.0))
    state, out = run(engine, views_then_cart("socks"))
    (offer,) = out.offers

    def buy(n: int, *categories: str) -> ClickEvent:
        lines = tuple(LineItem(f"x{c}", 40.0, 1, c) for c in categories)
        return event(
            n,
            EventType.PURCHASE,
            T0 + HOUR + n,
            order_id=f"o{n}",
            order_total=0.85 * 40.0 * len(lines),
            items=lines,
            coupon_code=offer.coupon_code,
        )

    after = EngineOutput()
    engine.handle(state, buy(20, "bags"), after)  # the code, but no wallet: not redeemed
    assert [o.type for o in after.outcomes] == [OutcomeType.PURCHASE]
    engine.handle(state, buy(21, "bags", "wallets"), after)
    assert [o.type for o in after.outcomes][1:] == [OutcomeType.PURCHASE, OutcomeType.REDEEMED]
    # 15 % off the whole order of 80.
    assert after.outcomes[-1].discount == pytest.approx(12.0)


def test_a_damaged_or_foreign_rules_record_is_refused() -> None:
    for data in (b"", b"[]", b'{"format": 2}', b'{"format": 1, "version": 1}'):
        with pytest.raises(RulesError):
            BundleRules.from_bytes(data)

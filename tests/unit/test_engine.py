"""The per-event step: decision points, control group, offers, attribution, labels at close."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import orjson

from schemas import JSON_SCHEMA_DIR
from schemas.decisions import NO_OFFER
from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import OutcomeType
from streams.engine import DecisionEngine, EngineOutput
from streams.feature_vector import FEATURE_NAMES
from streams.policy import choose_offer
from streams.uplift import Belief, UpliftModel
from streams.user_state import UserState
from tests.unit.conftest import HOUR, FixedOffer, make_engine

T0 = 1_700_000_000_000
OFFER_SCHEMA = json.loads((JSON_SCHEMA_DIR / "offer.schema.json").read_text())
DECISION_SCHEMA = json.loads((JSON_SCHEMA_DIR / "decision.schema.json").read_text())
OUTCOME_SCHEMA = json.loads((JSON_SCHEMA_DIR / "outcome.schema.json").read_text())


def view(n: int, ts: int, user: str = "u1") -> ClickEvent:
    return ClickEvent(f"e{n}", user, ts, EventType.VIEW, item_id="i1", category="shoes", price=40.0)


def purchase(n: int, ts: int, coupon: str | None = None, user: str = "u1") -> ClickEvent:
    return ClickEvent(
        f"e{n}",
        user,
        ts,
        EventType.PURCHASE,
        order_id=f"o{n}",
        order_total=36.0,
        coupon_code=coupon,
    )


def run(
    engine: DecisionEngine, events: list[ClickEvent], state: UserState | None = None
) -> tuple[UserState, EngineOutput]:
    state = state or engine.new_state()
    out = EngineOutput()
    for event in events:
        engine.handle(state, event, out)
    return state, out


def offering_engine() -> DecisionEngine:
    return make_engine(FixedOffer("pct10", propensity=0.5))


def test_one_decision_per_cooldown(engine: DecisionEngine) -> None:
    _, out = run(engine, [view(1, T0), view(2, T0 + 10 * 60_000), view(3, T0 + 2 * HOUR)])
    assert [d.trigger_event_id for d in out.decisions] == ["e1", "e3"]
    d = out.decisions[0]
    assert d.chosen_offer == NO_OFFER and d.propensity == 1.0  # no evidence yet: nothing sent
    assert set(d.purchase_probs) == set(engine.config.actions)
    jsonschema.validate(orjson.loads(orjson.dumps(d)), DECISION_SCHEMA)


def test_control_users_get_nothing_but_are_logged() -> None:
    engine = make_engine(FixedOffer("pct20"), control_share=1.0)
    _, out = run(engine, [view(1, T0)])
    (d,) = out.decisions
    assert d.control and d.chosen_offer == NO_OFFER and d.propensity == 1.0
    assert d.policy_offer == "pct20"  # what the policy would have done
    assert out.offers == []


def test_offer_is_valid_stable_and_explained() -> None:
    engine = offering_engine()
    _, out = run(engine, [view(1, T0)])
    (offer,) = out.offers
    jsonschema.validate(orjson.loads(orjson.dumps(offer)), OFFER_SCHEMA)
    assert offer.expires_at == T0 + 48 * HOUR and "exploration" in offer.reason
    (d,) = out.decisions
    assert d.offer_id == offer.offer_id and 0 < d.propensity < 1
    _, again = run(engine, [view(1, T0)])  # the same event redelivered to a fresh state
    assert again.offers[0].offer_id == offer.offer_id
    assert again.offers[0].coupon_code == offer.coupon_code


def test_purchase_with_coupon_is_attributed_and_labelled() -> None:
    engine = offering_engine()
    state, out = run(engine, [view(1, T0)])
    offer = out.offers[0]
    shown = ClickEvent("e2", "u1", T0 + 60_000, EventType.OFFER_SHOWN, offer_id=offer.offer_id)
    state, out = run(
        engine, [shown, shown, purchase(3, T0 + HOUR, coupon=offer.coupon_code)], state
    )
    kinds = [o.type for o in out.outcomes]
    assert kinds == [OutcomeType.SHOWN, OutcomeType.PURCHASE, OutcomeType.REDEEMED]
    for outcome in out.outcomes:
        jsonschema.validate(orjson.loads(orjson.dumps(outcome)), OUTCOME_SCHEMA)
    assert out.outcomes[1].discount > 0 and out.outcomes[1].order_total == 36.0
    # The label waits for the window to close: a positive learned at once and a negative
    # 48 h later would bias every purchase probability upwards.
    assert out.training == []
    state, out = run(engine, [view(4, T0 + 49 * HOUR)], state)
    (example,) = out.training
    assert example.label == 1 and example.redeemed and example.offer_code == offer.offer_code
    assert example.trigger == "view" and example.ts == T0 + 48 * HOUR
    assert example.order_value == 40.0  # what the items were worth before the 10 % coupon
    assert OutcomeType.NO_CONVERSION not in [o.type for o in out.outcomes]


def test_window_without_purchase_closes_with_negative_label(engine: DecisionEngine) -> None:
    state, out = run(engine, [view(1, T0)])
    decision = out.decisions[0]
    state, out = run(engine, [view(2, T0 + 49 * HOUR)], state)
    assert [o.type for o in out.outcomes] == [OutcomeType.NO_CONVERSION]
    assert out.outcomes[0].decision_id == decision.decision_id
    assert [e.label for e in out.training] == [0]
    assert [d.trigger_event_id for d in out.decisions] == ["e2"]  # and a new decision


def test_sweep_closes_windows_of_users_who_never_return(engine: DecisionEngine) -> None:
    state, _ = run(engine, [view(1, T0)])
    out = EngineOutput()
    assert not engine.close_expired(state, "u1", T0 + HOUR, out)
    assert engine.close_expired(state, "u1", T0 + 48 * HOUR, out)
    assert [e.label for e in out.training] == [0] and state.open_decisions == []


def test_late_events_do_not_trigger_decisions(engine: DecisionEngine) -> None:
    state, out = run(engine, [ClickEvent("e0", "u1", T0 + 5 * HOUR, EventType.SEARCH, query="q")])
    _, out = run(engine, [view(1, T0)], state)  # five hours late
    assert out.decisions == []
    assert state.features.count("view", "24h") == 1  # but it still counts


def test_daily_contact_cap_holds_after_the_cooldown() -> None:
    engine = offering_engine()
    state, out = run(engine, [view(1, T0)])
    assert len(out.offers) == 1
    _, out = run(engine, [view(2, T0 + 2 * HOUR), view(3, T0 + 20 * HOUR)], state)
    assert out.decisions == []  # capped: one offer a day
    _, out = run(engine, [view(4, T0 + 25 * HOUR)], state)
    assert len(out.decisions) == 1


def test_state_survives_serialisation_mid_stream(engine: DecisionEngine) -> None:
    events = [view(i, T0 + i * 20 * 60_000) for i in range(12)] + [purchase(99, T0 + 5 * HOUR)]
    _, straight = run(engine, events)
    state = engine.new_state()
    stored_out = EngineOutput()
    for event in events:
        state = UserState.from_bytes(state.to_bytes(), engine.config.abandon_after_ms)
        engine.handle(state, event, stored_out)
    assert orjson.dumps(stored_out) == orjson.dumps(straight)


def test_shadow_policy_is_logged_and_never_sent() -> None:
    # The models have seen pct10 triple buying for new users like u1, so the shadow picks it;
    # the serving policy sends nothing: the shadow's offer is logged, and no offer goes out.
    engine = make_engine(FixedOffer("none"), shadow_z=0.84, shadow_policy="candidate")
    new_user = (0.0,) * len(FEATURE_NAMES)
    for i in range(2000):
        engine.snapshot.learn(new_user, "view", "pct10", int(i % 10 < 3), redeemed=False)
        engine.snapshot.learn(new_user, "view", "none", int(i % 10 < 1), redeemed=False)
    _, out = run(engine, [view(1, T0)])
    (d,) = out.decisions
    assert out.offers == [] and d.chosen_offer == "none"
    assert d.shadow_policy == "candidate" and d.shadow_offer != "none"
    assert d.shadow_propensity == 1.0
    jsonschema.validate(orjson.loads(orjson.dumps(d)), DECISION_SCHEMA)
    _, plain = run(make_engine(FixedOffer("pct10")), [view(1, T0)])
    assert (plain.decisions[0].shadow_policy, plain.decisions[0].shadow_offer) == ("", "")


def test_a_replayed_decision_is_the_decision_already_sent_whatever_the_model() -> None:
    """After a crash, a message whose outputs went out is read again by a worker holding a
    newer model: the offer it re-sends must be the offer already sent, id and content."""
    first = make_engine(FixedOffer("pct10", propensity=0.5))
    _, sent = run(first, [view(1, T0)])
    (decision,), (offer,) = sent.decisions, sent.offers
    later = make_engine(FixedOffer("pct20", propensity=1.0))  # another model, another choice
    later.snapshot.version = 7
    later.replays[decision.decision_id] = decision
    _, again = run(later, [view(1, T0)])
    assert again.decisions == [decision] and again.offers == [offer]
    assert later.replays == {}  # used once
    _, fresh = run(later, [view(1, T0)])  # not a replay: today's model decides
    assert fresh.decisions[0].chosen_offer == "pct20"


# --- per-item margins: the order is valued at the cart's margin rate --------------------------


class KnownEffects(UpliftModel):
    """Every offer surely lifts P(buy) from 0.1 by 1.5 log-odds: only the economics decide."""

    def belief(self, vector: tuple[float, ...], trigger: str) -> Belief:
        offers = self.actions[1:]
        return Belief(0.1, dict.fromkeys(offers, 1.5), dict.fromkeys(offers, 0.01))


def known_effects_engine() -> DecisionEngine:
    engine = make_engine()
    engine.snapshot = replace(engine.snapshot, response=KnownEffects(engine.snapshot.actions))
    return engine


def cart_add(user: str, margin: float | None) -> ClickEvent:
    return ClickEvent(
        f"add-{user}",
        user,
        T0,
        EventType.ADD_TO_CART,
        item_id="i1",
        category="shoes",
        price=80.0,
        quantity=1,
        margin=margin,
    )


def test_a_rich_margin_cart_makes_an_offer_worth_more_than_a_thin_one() -> None:
    engine = known_effects_engine()
    _, rich = run(engine, [cart_add("rich", margin=48.0)])  # 60 %
    _, thin = run(engine, [cart_add("thin", margin=4.0)])  # 5 %
    (r,), (t,) = rich.decisions, thin.decisions
    assert r.expected_order_value == t.expected_order_value  # the same order at stake
    for offer in ("pct10", "pct20", "free_shipping", "bundle15"):
        assert r.scores[offer] > t.scores[offer], offer
    # At 5 % a sale makes 4.00: no coupon pays for the sales it brings; at 60 % one does.
    assert t.chosen_offer == NO_OFFER and r.chosen_offer != NO_OFFER


def test_without_margins_the_order_is_valued_at_the_global_rate_exactly() -> None:
    engine = known_effects_engine()
    state = engine.new_state()
    _, out = run(engine, [cart_add("plain", margin=None)], state)
    (d,) = out.decisions
    model, catalogue = engine.snapshot.response, engine.config.catalogue
    before = choose_offer(  # the policy as it was: the configured rate, whatever the cart
        model.belief(d.features, d.trigger),
        order_value=model.order_value(d.features, d.trigger),
        catalogue=catalogue,
        gross_margin=engine.config.gross_margin,
        redemption_rates={o.code: model.redemption_rate(o.code) for o in catalogue},
        z=engine.config.confidence_z,
        explore=False,
        draw=0.0,
    )
    assert d.scores == before.scores and d.chosen_offer == before.action


def test_a_purchase_outcome_carries_the_orders_margin_when_every_line_has_one() -> None:
    engine = offering_engine()
    state, out = run(engine, [view(1, T0)])
    coupon = out.offers[0].coupon_code
    lines = (LineItem("a", 50.0, 2, margin=20.0), LineItem("b", 10.0, 1, margin=4.0))
    bought = replace(purchase(2, T0 + HOUR, coupon=coupon), order_total=99.0, items=lines)
    _, out = run(engine, [bought], state)
    assert [(o.type, o.order_margin) for o in out.outcomes] == [
        (OutcomeType.PURCHASE, 44.0),  # 2 x 20 + 1 x 4, before the coupon
        (OutcomeType.REDEEMED, 44.0),
    ]
    state, out = run(engine, [view(3, T0)])
    partial = replace(bought, items=(*lines, LineItem("c", 5.0)), event_id="e4")
    _, out = run(engine, [partial], state)
    assert {o.order_margin for o in out.outcomes} == {None}  # a line without one: unknown

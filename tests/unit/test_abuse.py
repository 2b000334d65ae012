"""Abuse gating: the score, the gate in the decision path, and its suppression record."""

from __future__ import annotations

import json

import jsonschema
import orjson
from hypothesis import given
from hypothesis import strategies as st

from schemas import JSON_SCHEMA_DIR
from schemas.decisions import NO_OFFER
from schemas.events import ClickEvent, EventType
from schemas.suppressions import REASONS
from streams.abuse import ABUSE_PRIOR, OFF, abuse_score, gates_user
from streams.engine import DecisionEngine, EngineOutput
from streams.features import SlidingWindowFeatures
from streams.user_state import UserState
from tests.unit.conftest import HOUR, FixedOffer, make_engine

T0 = 1_700_438_400_000
SUPPRESSION_SCHEMA = json.loads((JSON_SCHEMA_DIR / "suppression.schema.json").read_text())


def purchase(user: str, ts: int, n: int, coupon: str | None) -> ClickEvent:
    return ClickEvent(
        f"{user}-p{n}",
        user,
        ts,
        EventType.PURCHASE,
        order_id=f"o{n}",
        order_total=57.0,
        coupon_code=coupon,
    )


def cart_add(user: str, ts: int, n: int) -> ClickEvent:
    return ClickEvent(
        f"{user}-a{n}", user, ts, EventType.ADD_TO_CART, item_id="i1", category="shoes", price=60.0
    )


def gate_engine(threshold: float = 0.5, **overrides: object) -> DecisionEngine:
    return make_engine(FixedOffer("pct10", propensity=1.0), abuse_threshold=threshold, **overrides)


def hunter_state(engine: DecisionEngine, user: str, codes: int) -> UserState:
    """A user who bought ``codes`` times with a public code over the last days."""
    state, out = engine.new_state(), EngineOutput()
    for n in range(codes):
        engine.handle(state, purchase(user, T0 + n * 24 * HOUR, n, "SAVE3"), out)
    return state


@given(st.integers(0, 50), st.integers(0, 50))
def test_the_score_is_a_share_below_one_that_grows_with_codes(codes: int, purchases: int) -> None:
    codes = min(codes, purchases)
    score = abuse_score(codes, purchases)
    assert 0 < score < OFF
    assert abuse_score(codes + 1, purchases + 1) > score  # one more coded purchase
    assert abuse_score(codes, purchases + 1) < score  # one more honest purchase
    assert not gates_user(score, OFF)


def test_without_purchases_the_score_is_the_priors_mean() -> None:
    alpha, beta = ABUSE_PRIOR
    assert abuse_score(0, 0) == alpha / (alpha + beta) < 0.5


def test_a_user_paying_with_codes_we_never_sent_gets_no_offer_and_a_reason() -> None:
    engine = gate_engine()
    state = hunter_state(engine, "h1", codes=2)
    assert state.features.unsent_codes("30d") == 2
    out = EngineOutput()
    engine.handle(state, cart_add("h1", T0 + 3 * 24 * HOUR, 1), out)
    (decision,) = out.decisions
    assert decision.chosen_offer == NO_OFFER and decision.policy_offer == "pct10"
    assert decision.propensity == 1.0  # every draw's offer would have been withheld
    assert decision.abuse_score == round(abuse_score(2, 2), 4) >= 0.5  # logged with it
    assert out.offers == []
    (s,) = out.suppressions
    assert (s.reason, s.decision_id, s.policy_offer) == ("abuse", decision.decision_id, "pct10")
    assert s.expected_cost > 0  # what gating withheld, for the report
    jsonschema.validate(orjson.loads(orjson.dumps(s)), SUPPRESSION_SCHEMA)
    assert state.offer_times == []  # nothing reached the user: no contact counted


def test_with_the_gate_off_the_same_user_gets_the_offer() -> None:
    engine = gate_engine(threshold=OFF)
    state = hunter_state(engine, "h1", codes=5)
    out = EngineOutput()
    engine.handle(state, cart_add("h1", T0 + 6 * 24 * HOUR, 1), out)
    assert [d.chosen_offer for d in out.decisions] == ["pct10"] and not out.suppressions
    assert out.decisions[0].abuse_score > 0.5  # scored and logged, not acted on


def test_one_public_code_among_honest_purchases_is_no_verdict() -> None:
    engine = gate_engine()
    state, out = engine.new_state(), EngineOutput()
    for n in range(4):
        engine.handle(state, purchase("u1", T0 + n * HOUR, n, "SAVE3" if n == 0 else None), out)
    engine.handle(state, cart_add("u1", T0 + 5 * HOUR, 1), out)
    assert [d.chosen_offer for d in out.decisions] == ["pct10"]


def test_our_own_coupon_is_not_an_unsent_code() -> None:
    engine = gate_engine()
    state, out = engine.new_state(), EngineOutput()
    for n in range(3):
        ts = T0 + n * 3 * 24 * HOUR  # past the daily cap and the cool-down each time
        engine.handle(state, cart_add("u1", ts, n), out)
        engine.handle(state, purchase("u1", ts + 60_000, n, out.offers[-1].coupon_code), out)
    assert len(out.offers) == 3 and state.features.unsent_codes("30d") == 0


def test_a_control_user_is_gated_too_so_both_arms_live_under_the_gate() -> None:
    engine = gate_engine(control_share=1.0)
    state = hunter_state(engine, "h1", codes=2)
    out = EngineOutput()
    engine.handle(state, cart_add("h1", T0 + 3 * 24 * HOUR, 1), out)
    assert [s.reason for s in out.suppressions] == ["abuse"]
    assert state.offer_times == []


def test_an_older_state_without_the_counter_reads_as_no_codes() -> None:
    f = SlidingWindowFeatures()
    f.update("purchase", ts=T0, amount=50.0)
    f.record_unsent_code(T0)
    compact = orjson.loads(orjson.dumps(f.to_compact()))
    for series in compact[5]:
        for row in series:
            del row[11:]  # the counters as a worker before the abuse gate wrote them
    old = SlidingWindowFeatures.from_compact(compact, f.abandon_after_ms)
    assert old.count("purchase", "30d") == 1 and old.unsent_codes("30d") == 0
    assert f.unsent_codes("30d") == 1


def test_the_published_schema_lists_exactly_the_reasons_the_code_knows() -> None:
    reason = SUPPRESSION_SCHEMA["properties"]["reason"]
    assert reason["enum"] == list(REASONS)
    assert "abuse" in REASONS


def test_a_gated_decision_closes_with_its_outcome_and_teaches_the_models_nothing() -> None:
    engine = gate_engine()
    state = hunter_state(engine, "h1", codes=2)
    out = EngineOutput()
    engine.handle(state, cart_add("h1", T0 + 3 * 24 * HOUR, 1), out)
    assert state.open_decisions[0].gated
    again = UserState.from_bytes(state.to_bytes(), engine.config.abandon_after_ms)
    assert again.open_decisions[0].gated  # the flag survives the changelog
    # Only a state holding a gated decision needs format 4; an ungated row keeps format 3's
    # length, so with the gate off (the default) the previous version reads every state.
    assert orjson.loads(state.to_bytes())[0] == 4
    assert len(state.open_decisions[0].to_compact()) == 16
    state.open_decisions[0].gated = False
    assert len(state.open_decisions[0].to_compact()) == 15
    assert orjson.loads(state.to_bytes())[0] == 3
    engine.close_expired(again, "h1", T0 + 6 * 24 * HOUR, out)
    assert [o.type.value for o in out.outcomes] == ["no_conversion"] and out.training == []

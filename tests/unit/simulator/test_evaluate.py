"""promo evaluate without servers: common random numbers, the summary's shape, baselines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import orjson
import pytest

from schemas.decisions import NO_OFFER, Decision
from schemas.outcomes import Outcome, OutcomeType
from simulator.closed_loop import LoopResult, play
from simulator.evaluate import START_MS, EvaluationConfig, by_period, evaluate, format_summary
from simulator.policies import POLICY_NAMES
from simulator.population import build_population
from tests.unit.conftest import make_engine

ENGINE = dataclasses.replace(
    make_engine().config,
    limits=dataclasses.replace(make_engine().config.limits, cooldown_ms=48 * 3_600_000),
    triggers=frozenset({"add_to_cart", "cart_return"}),
    control_share=0.1,
    explore_share=0.1,
)


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    config = EvaluationConfig(
        engine=ENGINE, users=300, days=3.0, warmup_days=2.0, seed=11, workers=1, period_days=1.0
    )
    return evaluate(config)


def test_users_no_offer_reaches_behave_identically() -> None:
    # The guarantee that makes "true incremental profit" true: with the same seed, the shop
    # replays every user the same way unless an offer reached them.
    population = build_population(200, seed=5)
    config = EvaluationConfig(engine=ENGINE, users=200, days=2.0, seed=5, workers=1)
    from simulator.evaluate import engine_factory

    none = play(population, None, seed=5, days=2.0, start_ms=START_MS)
    again = play(population, None, seed=5, days=2.0, start_ms=START_MS)
    random = play(
        population,
        engine_factory(config, population, "random"),
        seed=5,
        days=2.0,
        start_ms=START_MS,
    )
    assert np.array_equal(none.profits, again.profits)
    reached = {o.user_id for o in random.offers}
    untouched = [i for i, u in enumerate(population.users) if u.user_id not in reached]
    assert untouched and len(untouched) < len(population.users)
    assert np.array_equal(random.profits[untouched], none.profits[untouched])


def test_every_policy_is_judged_against_the_same_world(result: dict[str, object]) -> None:
    policies = result["policies"]
    assert isinstance(policies, dict) and set(policies) == set(POLICY_NAMES)
    none = policies["none"]
    assert none["true_incremental_profit"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert none["offers_sent"] == 0
    for name, p in policies.items():
        true = p["true_incremental_profit"]
        assert true["low"] <= true["value"] <= true["high"], name
        assert {"offers_sent", "budget_spent", "decisions"} <= set(p)
    # Random coupons to everyone lose money; the oracle, which knows every user, does not.
    assert policies["random"]["offers_sent"] > policies["oracle"]["offers_sent"] > 0
    assert policies["random"]["true_incremental_profit"]["value"] < 0
    assert policies["oracle"]["true_incremental_profit"]["value"] > 0
    assert "oracle" in format_summary(result)


def test_the_truth_splits_by_response_type_and_adds_up(result: dict[str, object]) -> None:
    policies = result["policies"]
    assert isinstance(policies, dict)
    for name in ("random", "oracle"):
        parts = policies[name]["by_response_type"]
        assert sum(p["users"] for p in parts.values()) == result["users"]
        assert sum(p["offers_sent"] for p in parts.values()) == policies[name]["offers_sent"]
        total = sum(p["true_incremental_profit"] for p in parts.values())
        assert total == pytest.approx(policies[name]["true_incremental_profit"]["value"], abs=0.1)
    # The oracle sends sure things nothing (they buy anyway); random offers reach them.
    assert policies["oracle"]["by_response_type"]["sure_thing"]["offers_sent"] == 0
    assert policies["random"]["by_response_type"]["sure_thing"]["offers_sent"] > 0
    table = format_summary(result)
    assert "by response type" in table and "sleeping_dog" in table


def test_the_truth_splits_by_period_and_adds_up(result: dict[str, object]) -> None:
    policies = result["policies"]
    assert isinstance(policies, dict)
    for name in ("random", "oracle"):
        periods = policies[name]["by_period"]
        assert [(q["from_day"], q["to_day"]) for q in periods] == [(0, 1), (1, 2), (2, 3)]
        assert sum(q["offers_sent"] for q in periods) == policies[name]["offers_sent"]
        total = sum(q["true_incremental_profit"]["value"] for q in periods)
        assert total == pytest.approx(policies[name]["true_incremental_profit"]["value"], abs=0.1)
    assert "by period" in format_summary(result)


def test_a_period_holds_the_profit_realised_by_its_end() -> None:
    # The profit kept at a mark is what a run ending there realised: a shorter run of the
    # same world is a prefix of the longer one (common random numbers), so the two agree.
    population = build_population(300, seed=3)
    config = EvaluationConfig(engine=ENGINE, users=300, days=2.0, seed=3, workers=1)
    from simulator.closed_loop import STEP_MS
    from simulator.evaluate import engine_factory

    def run(days: float, marks: list[int]) -> LoopResult:
        engine = engine_factory(config, population, "random")
        return play(population, engine, seed=3, days=days, start_ms=START_MS, marks_ms=marks)

    day = 86_400_000
    # A mark at the end of the simulator's step that holds a purchase of the second day.
    bought = min(p.ts for p in run(2.0, []).purchases if p.ts > START_MS + day)
    mark = START_MS + -(-(bought - START_MS) // STEP_MS) * STEP_MS
    long = run(2.0, [mark, START_MS + 3 * day])
    short = run((mark - START_MS) / day, [])
    assert np.array_equal(long.profits_at[0], short.profits)
    assert not np.array_equal(long.profits_at[0], long.profits)
    assert np.array_equal(long.profits_at[1], long.profits)  # a mark past the end: the end


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown policies"):
        EvaluationConfig(engine=ENGINE, policies=("learned", "clairvoyant"))
    with pytest.raises(ValueError, match="--period-days"):
        EvaluationConfig(engine=ENGINE, period_days=0.0)


def test_an_ungated_variant_runs_the_same_policy_with_the_abuse_gate_off() -> None:
    engine = dataclasses.replace(ENGINE, abuse_threshold=0.5)
    config = EvaluationConfig(
        engine=engine,
        users=400,
        days=4.0,
        warmup_days=7.0,
        seed=3,
        workers=1,
        policies=("none", "random", "random_ungated"),
        coupon_hunters=0.2,
        casual_code_use=0.1,
    )
    result = evaluate(config)
    gated, ungated = result["policies"]["random"], result["policies"]["random_ungated"]
    assert gated["suppressions_by_reason"].get("abuse", 0) > 0
    assert "abuse" not in ungated["suppressions_by_reason"]
    assert gated["coupon_hunters"]["gated_decisions_on_hunters"] > 0
    assert ungated["coupon_hunters"]["offers_sent"] > gated["coupon_hunters"]["offers_sent"]
    assert result["coupon_hunters"] > 40


def test_served_offers_say_what_they_predicted_and_what_happened() -> None:
    # Two days: on the first, two offers served at 0.3 of which one bought, one explored
    # (propensity 0.5, left out), one control decision (nothing sent); on the second, one
    # served at 0.1 that bought.
    config = EvaluationConfig(engine=ENGINE, users=10, days=2.0, warmup_days=0.0, period_days=1.0)
    day = 86_400_000

    def decision(i: int, ts: int, offer: str, propensity: float, p: float) -> Decision:
        return Decision(
            decision_id=f"d{i}",
            user_id=f"u{i}",
            ts=ts,
            trigger_event_id=f"e{i}",
            trigger="cart_return",
            segment=0,
            control=offer == NO_OFFER,
            chosen_offer=offer,
            policy_offer="pct10",
            propensity=propensity,
            scores={},
            purchase_probs={NO_OFFER: 0.05, "pct10": p},
            features=(),
            expected_order_value=80.0,
            offer_id=None,
            expires_at=ts + 2 * day,
            policy_version="v",
            model_version=1,
        )

    decisions = [
        decision(0, START_MS + 10, "pct10", 1.0, 0.3),
        decision(1, START_MS + 20, "pct10", 1.0, 0.3),
        decision(2, START_MS + 30, "pct10", 0.5, 0.9),
        decision(3, START_MS + 40, NO_OFFER, 1.0, 0.9),
        decision(4, START_MS + day + 10, "pct10", 1.0, 0.1),
    ]
    outcomes = [
        Outcome(
            f"o{i}", f"d{i}", f"u{i}", START_MS + day, OutcomeType.PURCHASE, "e", "pct10", False
        )
        for i in (0, 2, 3, 4)
    ]
    zeros = np.zeros(10)
    run = LoopResult(zeros, zeros, 0, decisions, [], outcomes, profits_at=[zeros] * 3)
    none = LoopResult(zeros, zeros, 0, profits_at=[zeros] * 3)
    first, second = by_period(run, none, config)
    assert first["offers_sent"] == 3 and second["offers_sent"] == 1
    assert first["served"] == {
        "offers": 2,
        "predicted_conversion": 0.3,
        "realised_conversion": 0.5,
    }
    assert second["served"] == {
        "offers": 1,
        "predicted_conversion": 0.1,
        "realised_conversion": 1.0,
    }


def test_each_decision_is_written_with_its_outcome_and_the_users_true_type(
    tmp_path: Path,
) -> None:
    config = EvaluationConfig(
        engine=ENGINE,
        users=300,
        days=3.0,
        warmup_days=2.0,
        seed=11,
        workers=1,
        policies=("none", "random"),
    )
    result = evaluate(config, decisions_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["random.jsonl"]
    rows = [orjson.loads(line) for line in (tmp_path / "random.jsonl").read_bytes().splitlines()]
    assert len(rows) == result["policies"]["random"]["decisions"] > 0
    types = {u.user_id: u.response_type.value for u in build_population(300, seed=11).users}
    assert all(r["response_type"] == types[r["user_id"]] for r in rows)
    offered = [r for r in rows if r["chosen_offer"] != NO_OFFER]
    assert offered and all(r["cell"].endswith(r["trigger"]) for r in rows)
    # Only a decision whose offer reached the user can have it shown, clicked or redeemed.
    assert any(r["shown"] for r in offered) and any(r["clicked"] for r in offered)
    assert not any(r["shown"] or r["clicked"] or r["redeemed"] for r in rows if r not in offered)
    assert 0 < sum(r["purchased"] for r in rows) < len(rows)
    assert all(r["purchased"] for r in rows if r["redeemed"])

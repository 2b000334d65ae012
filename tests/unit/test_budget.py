"""Daily budget and pacing, and the suppression records of decision points that send nothing."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace

import jsonschema
import orjson
import pytest

from schemas import JSON_SCHEMA_DIR
from schemas.decisions import NO_OFFER
from schemas.events import ClickEvent, EventType
from streams.budget import PACING_SLACK, SHAPE_MEMORY, BudgetLedger
from streams.engine import DecisionContext, DecisionEngine, EngineOutput
from streams.policy import Choice
from tests.unit.conftest import HOUR, FixedOffer, make_engine

DAY = 24 * HOUR
#: A Monday 00:00 UTC.
MIDNIGHT = 1_700_438_400_000
SUPPRESSION_SCHEMA = json.loads((JSON_SCHEMA_DIR / "suppression.schema.json").read_text())


def cart_add(user: str, ts: int, n: int = 1) -> ClickEvent:
    return ClickEvent(
        f"{user}-e{n}", user, ts, EventType.ADD_TO_CART, item_id="i1", category="shoes", price=40.0
    )


def budget_engine(daily_budget: float | None, **overrides: object) -> DecisionEngine:
    return make_engine(FixedOffer("pct10", propensity=1.0), daily_budget=daily_budget, **overrides)


def one_day_of_traffic(
    engine: DecisionEngine, users: int, day_start: int = MIDNIGHT
) -> Iterator[tuple[int, float, EngineOutput]]:
    """One cart add per user, spread evenly over the day, through one partition's ledger;
    yields (event time, ledger spend after it, what it produced)."""
    ledger = BudgetLedger()
    for i in range(users):
        ts = day_start + i * DAY // users
        out = EngineOutput()
        engine.handle(engine.new_state(), cart_add(f"u{day_start}-{i}", ts), out, ledger)
        yield ts, ledger.spent, out


def offer_cost() -> float:
    """The expected discount of one offer in these tests, as the suppression of an offer no
    budget can afford reports it."""
    ((_, _, out),) = one_day_of_traffic(budget_engine(1e-9), 1)
    return out.suppressions[0].expected_cost


def test_daily_budget_is_never_exceeded_and_withheld_offers_leave_a_reason() -> None:
    budget = 20 * offer_cost()  # enough for 20 of 200 offers a day
    engine = budget_engine(budget)
    outs = list(one_day_of_traffic(engine, 200))
    assert max(spent for _, spent, _ in outs) <= budget
    offers = sum(len(out.offers) for _, _, out in outs)
    assert 15 <= offers <= 20
    suppressions = [s for _, _, out in outs for s in out.suppressions]
    assert len(suppressions) == 200 - offers
    assert {s.reason for s in suppressions} <= {"budget", "pacing"}
    decisions = {d.decision_id: d for _, _, out in outs for d in out.decisions}
    for s in suppressions:
        jsonschema.validate(orjson.loads(orjson.dumps(s)), SUPPRESSION_SCHEMA)
        withheld = decisions[s.decision_id]
        assert withheld.chosen_offer == NO_OFFER and withheld.policy_offer == "pct10"
        assert withheld.propensity == 1.0 and withheld.offer_id is None
        assert s.policy_offer == "pct10" and s.expected_cost > 0


def test_pacing_spreads_the_budget_over_the_day() -> None:
    cost = offer_cost()
    budget = 30 * cost
    engine = budget_engine(budget)
    by_hour: dict[int, float] = defaultdict(float)
    for ts, spent, _ in one_day_of_traffic(engine, 300):
        by_hour[(ts - MIDNIGHT) // HOUR] = spent
    # Without pacing the first 30 cart adds (before 02:30) would take the whole day's budget.
    assert by_hour[2] <= budget * (3 / 24 + PACING_SLACK) + cost
    assert by_hour[11] <= budget * (12 / 24 + PACING_SLACK) + cost
    assert by_hour[23] >= budget - 2 * cost  # and it is spent by the end of the day


def test_pacing_learns_the_shape_of_the_day() -> None:
    ledger = BudgetLedger()
    for hour in range(24):  # a day whose traffic all comes in the evening
        for _ in range(10 if hour >= 18 else 0):
            ledger.observe(MIDNIGHT + hour * HOUR)
    ledger.observe(MIDNIGHT + DAY)  # the next day starts: the shape moves towards the evening
    noon, evening = MIDNIGHT + DAY + 12 * HOUR, MIDNIGHT + DAY + 18 * HOUR
    assert ledger.paced_share(noon) == pytest.approx((1 - SHAPE_MEMORY) * 12 / 24)
    assert ledger.paced_share(evening) == pytest.approx((1 - SHAPE_MEMORY) * 18 / 24)
    assert ledger.paced_share(MIDNIGHT + 2 * DAY - 1) == pytest.approx(1.0)
    assert ledger.spent == 0.0 and ledger.today[0] == 1


def test_roi_bar_rises_ahead_of_pace_and_sinks_behind() -> None:
    ledger = BudgetLedger()
    early = MIDNIGHT + HOUR
    ledger.observe(early)
    ledger.commit(50.0)  # half the budget by 01:00
    for _ in range(20):
        ledger.steer(early, budget=100.0)
    assert ledger.bar > 0.5
    evening = MIDNIGHT + 20 * HOUR  # the pace has room again, but the bar is still up
    assert ledger.gate(evening, cost=0.1, gain=0.01, budget=100.0) == "pacing"  # earns too little
    assert ledger.gate(evening, cost=0.1, gain=1.0, budget=100.0) is None  # earns enough
    late = MIDNIGHT + 23 * HOUR
    for _ in range(60):
        ledger.steer(late, budget=100.0)
    assert ledger.bar == 0.0
    assert ledger.gate(late, cost=0.1, gain=0.01, budget=100.0) is None


def test_ledger_survives_its_changelog_form() -> None:
    ledger = BudgetLedger()
    ledger.observe(MIDNIGHT + 5 * HOUR)
    ledger.commit(12.5)
    ledger.steer(MIDNIGHT + 5 * HOUR, 100.0)
    assert BudgetLedger.from_bytes(ledger.to_bytes()) == ledger


class Mixed:
    """Explores: pct20 half the time, free shipping a quarter, nothing a quarter."""

    SCORES = {NO_OFFER: 0.0, "pct20": 1.0, "free_shipping": 1.0}
    CHOICE = Choice(
        "pct20",
        0.5,
        SCORES,
        dict.fromkeys(SCORES, 0.2),
        explored=True,
        probabilities={"pct20": 0.5, "free_shipping": 0.25, NO_OFFER: 0.25},
    )

    def choose(self, context: DecisionContext) -> Choice:
        return self.CHOICE


def test_a_withheld_exploring_decision_logs_the_chance_it_had_of_sending_nothing() -> None:
    engine = make_engine(Mixed(), daily_budget=1000.0)
    ((_, _, first),) = one_day_of_traffic(make_engine(Mixed()), 1)
    value = first.decisions[0].expected_order_value
    pct20, shipping = (
        engine.expected_cost(Mixed.CHOICE, "pct20", value),
        engine.expected_cost(Mixed.CHOICE, "free_shipping", value),
    )
    assert shipping < pct20
    ledger = BudgetLedger()
    late = MIDNIGHT + DAY - 60_000  # the pace allows the whole day by now
    ledger.observe(late)
    ledger.commit(1000.0 - (pct20 + shipping) / 2)  # room for free shipping only
    out = EngineOutput()
    engine.handle(engine.new_state(), cart_add("u1", late), out, ledger)
    (d,) = out.decisions
    assert d.chosen_offer == NO_OFFER and d.policy_offer == "pct20"
    assert d.propensity == 0.75  # the pct20 draws and the `none` draws, not the free shipping
    assert [s.reason for s in out.suppressions] == ["budget"]


def test_every_suppressed_decision_point_leaves_a_reason() -> None:
    engine = make_engine(FixedOffer("pct10", propensity=1.0))
    state, out = engine.new_state(), EngineOutput()
    t = MIDNIGHT
    events = [
        cart_add("u1", t, 1),  # decided: an offer
        cart_add("u1", t + 10 * 60_000, 2),  # within the cool-down
        cart_add("u1", t - 20 * 60_000, 3),  # late: older than the user's latest by > 10 min
        cart_add("u1", t + 2 * HOUR, 4),  # after the cool-down, but one offer a day
    ]
    for event in events:
        engine.handle(state, event, out)
    assert len(out.offers) == 1
    reasons = [(s.trigger_event_id, s.reason, s.decision_id) for s in out.suppressions]
    assert reasons == [("u1-e2", "cooldown", ""), ("u1-e3", "late", ""), ("u1-e4", "daily_cap", "")]
    control = replace(engine.config, control_share=1.0)
    engine = DecisionEngine(control, engine.snapshot, FixedOffer("pct10", propensity=1.0))
    out = EngineOutput()
    engine.handle(engine.new_state(), cart_add("u2", t), out)
    (s,) = out.suppressions
    assert s.reason == "control" and s.decision_id == out.decisions[0].decision_id
    assert Counter(s.reason for s in out.suppressions) == {"control": 1}

"""Named segments and fairness through ClickHouse, as test input for both engines.
tests/current_clickhouse and tests/integration (18.16) run the same checks.

**A hand-worked shop** (``write_shop``): decisions carrying segment names, rule segments and
groups, and the figures migration 0010's views and the report must give. Rate 0.3. Every row
written twice, merges stopped: only FINAL keeps a copy from counting.

    user  arm  decision: segment name, rule, group, sent             bought
    u1    T    d1   0 frequent browsers, new, north: pct10           100, 10 off (d1)
               d1b  +3 d: 1 bought recently, regular, south: none
               d1c  +4 d: 1 bought recently, regular, south: pct10
    u2    C    d2   0 frequent browsers, new, north (policy pct10)   50
    u3    T    d3   1 bought recently, regular, '': none             - (30 the day before)
    u4    C    d4   1 bought recently, regular, '' (policy pct10)    - (20 the day before)
    u5    T    d5   1 bought recently, potential, north: pct20       -
    u6    C    d6   0 typical shoppers (model v1), potential, north  40

Each decision counts in its own groups: u1 is `new` at d1 and `regular` at d1b and d1c.
Offer rates (offers per treated decision): rule segment new 1/1, potential 1/1, regular 1/3
(u1 1 of 2, u3 0 of 1); platform group north 2/2, south 1/2, '' 0/1. So regular is 3x and
south 2x below the highest, both flagged but not clear of noise (two users, one user). The
placeholder group '' is offered nothing, yet is not flagged: it is no group of users.

Per user, by what was fixed before the first decision: u1, u2, u5, u6 are in north at their
first decision and bought nothing in the pre-period; u3 and u4 are in '' and bought in it.
North: conversion 1/2 against 2/2; net profit per user 0.3 x 110 - 10 = 23 and 0, against
0.3 x 50 = 15 and 0.3 x 40 = 12.

**A shop run by the engine** (``write_engine_shop``): real events through
``streams.engine.DecisionEngine`` with the default decision points (add to cart, cart
return), where every purchase follows a cart add, as on a real shop. Every first decision is
`new` or `potential`; the later ones are `regular`, `high_value` and `at_risk`, and the
fairness view shows all five (grouping users by their first decision showed two).
"""

from __future__ import annotations

from typing import Any

import pytest

from promo.clickhouse import insert
from promo.fairness import read_fairness
from promo.report import format_report
from promo.report_figures import (
    BY_RULE_SEGMENT,
    BY_SEGMENT,
    breakdown,
    read_evaluation,
    user_figures,
)
from schemas.decisions import NO_OFFER, Decision
from schemas.events import ClickEvent, EventType
from schemas.outcomes import Outcome, OutcomeType
from streams.engine import EngineOutput
from streams.evaluation import Moments, mean_difference, proportion_difference
from streams.segments import RULE_SEGMENTS
from streams.sink_rows import (
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    decision_row,
    event_row,
    outcome_row,
)
from tests.margin_shop import outcome_of
from tests.unit.conftest import make_engine

TS = 1_700_000_000_000
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
RATE = 0.3
NAMES = {0: "frequent browsers", 1: "bought recently"}


def _decision(
    name: str,
    user: str,
    policy_offer: str,
    segment: int,
    rule: str,
    group: str,
    *,
    control: bool = False,
    ts: int = TS,
    model_version: int = 2,
) -> Decision:
    sent = NO_OFFER if control else policy_offer
    return Decision(
        decision_id=name,
        user_id=user,
        ts=ts,
        trigger_event_id=f"ev-{name}",
        trigger="add_to_cart",
        segment=segment,
        control=control,
        chosen_offer=sent,
        policy_offer=policy_offer,
        propensity=1.0,
        scores={NO_OFFER: 0.0},
        purchase_probs={NO_OFFER: 0.1},
        features=(0.0,),
        expected_order_value=80.0,
        offer_id=None if sent == NO_OFFER else f"of-{name}",
        expires_at=ts + 2 * DAY,
        policy_version="v1",
        model_version=model_version,
        segment_name="typical shoppers" if model_version == 1 else NAMES[segment],
        rule_segment=rule,
        group=group,
    )


D1 = _decision("d1", "u1", "pct10", 0, "new", "north")
D1B = _decision("d1b", "u1", NO_OFFER, 1, "regular", "south", ts=TS + 3 * DAY)
D1C = _decision("d1c", "u1", "pct10", 1, "regular", "south", ts=TS + 4 * DAY)
D2 = _decision("d2", "u2", "pct10", 0, "new", "north", control=True)
D3 = _decision("d3", "u3", NO_OFFER, 1, "regular", "")
D4 = _decision("d4", "u4", "pct10", 1, "regular", "", control=True)
D5 = _decision("d5", "u5", "pct20", 1, "potential", "north")
D6 = _decision("d6", "u6", NO_OFFER, 0, "potential", "north", control=True, model_version=1)
DECISIONS = (D1, D1B, D1C, D2, D3, D4, D5, D6)


def _purchase(name: str, user: str, total: float, ts: int = TS + MINUTE) -> ClickEvent:
    return ClickEvent(name, user, ts, EventType.PURCHASE, order_id=f"o-{name}", order_total=total)


BUY1, BUY2, BUY6 = (
    _purchase("e1", "u1", 100.0),
    _purchase("e2", "u2", 50.0),
    _purchase("e6", "u6", 40.0),
)
BEFORE3, BEFORE4 = _purchase("e3", "u3", 30.0, TS - DAY), _purchase("e4", "u4", 20.0, TS - DAY)


OUTCOMES = (
    outcome_of(D1, OutcomeType.PURCHASE, BUY1, 10.0),
    outcome_of(D1, OutcomeType.REDEEMED, BUY1, 10.0),
    outcome_of(D2, OutcomeType.PURCHASE, BUY2),
    outcome_of(D6, OutcomeType.PURCHASE, BUY6),
)


def _write(
    client: Any,
    decisions: tuple[Decision, ...] | list[Decision],
    outcomes: tuple[Outcome, ...] | list[Outcome],
    events: tuple[ClickEvent, ...] | list[ClickEvent],
) -> None:
    """Rows on a migrated database, every row written twice with merges stopped."""
    for table in ("events", "decisions", "outcomes"):
        client.execute(f"SYSTEM STOP MERGES {table}")
    for _ in range(2):
        insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in decisions])
        insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in outcomes])
        insert(client, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(events)])


def write_shop(client: Any) -> None:
    _write(client, DECISIONS, OUTCOMES, (BUY1, BUY2, BUY6, BEFORE3, BEFORE4))


def check_v_segment_names_gives_analysts_the_latest_name(shop: Any) -> None:
    rows = shop.execute("SELECT segment, name, first_model_version FROM v_segment_names")
    assert sorted(rows) == [(0, "frequent browsers", 1), (1, "bought recently", 2)]


def check_the_decisions_keep_their_groups(shop: Any) -> None:
    rows = shop.execute(
        "SELECT decision_id, segment_name, rule_segment, user_group FROM decisions FINAL "
        "WHERE user_id = 'u1' ORDER BY decision_id"
    )
    assert rows == [
        ("d1", "frequent browsers", "new", "north"),
        ("d1b", "bought recently", "regular", "south"),
        ("d1c", "bought recently", "regular", "south"),
    ]


def check_each_user_keeps_the_group_of_their_first_decision(shop: Any) -> None:
    rows = shop.execute("SELECT user_id, first_user_group FROM v_user_groups ORDER BY user_id")
    assert rows == [
        ("u1", "north"),
        ("u2", "north"),
        ("u3", ""),
        ("u4", ""),
        ("u5", "north"),
        ("u6", "north"),
    ]


def check_each_decision_counts_in_the_groups_it_was_logged_with(shop: Any) -> None:
    rows = shop.execute(
        "SELECT dimension, group_name, arm, users, decisions, offers, conversions, "
        "sum_discount, sum_user_decisions_sq, sum_user_offers_sq, sum_user_offers_decisions "
        "FROM v_by_group ORDER BY dimension, group_name, arm"
    )
    assert rows == [
        ("group", "", "control", 1, 1, 0, 0, 0.0, 1, 0, 0),
        ("group", "", "treatment", 1, 1, 0, 0, 0.0, 1, 0, 0),
        ("group", "north", "control", 2, 2, 0, 2, 0.0, 2, 0, 0),
        ("group", "north", "treatment", 2, 2, 2, 1, 10.0, 2, 2, 2),
        ("group", "south", "treatment", 1, 2, 1, 0, 0.0, 4, 1, 2),
        ("new_vs_returning", "new", "control", 1, 1, 0, 1, 0.0, 1, 0, 0),
        ("new_vs_returning", "new", "treatment", 1, 1, 1, 1, 10.0, 1, 1, 1),
        ("new_vs_returning", "returning", "control", 2, 2, 0, 1, 0.0, 2, 0, 0),
        ("new_vs_returning", "returning", "treatment", 3, 4, 2, 0, 0.0, 6, 2, 3),
        ("rule_segment", "new", "control", 1, 1, 0, 1, 0.0, 1, 0, 0),
        ("rule_segment", "new", "treatment", 1, 1, 1, 1, 10.0, 1, 1, 1),
        ("rule_segment", "potential", "control", 1, 1, 0, 1, 0.0, 1, 0, 0),
        ("rule_segment", "potential", "treatment", 1, 1, 1, 0, 0.0, 1, 1, 1),
        ("rule_segment", "regular", "control", 1, 1, 0, 0, 0.0, 1, 0, 0),
        ("rule_segment", "regular", "treatment", 2, 3, 1, 0, 0.0, 5, 1, 2),
        ("segment", "0 frequent browsers", "control", 1, 1, 0, 1, 0.0, 1, 0, 0),
        ("segment", "0 frequent browsers", "treatment", 1, 1, 1, 1, 10.0, 1, 1, 1),
        ("segment", "0 typical shoppers", "control", 1, 1, 0, 1, 0.0, 1, 0, 0),
        ("segment", "1 bought recently", "control", 1, 1, 0, 0, 0.0, 1, 0, 0),
        ("segment", "1 bought recently", "treatment", 3, 4, 2, 0, 0.0, 6, 2, 3),
    ]
    by_rule = shop.execute(
        "SELECT rule_segment, arm, decisions, users, conversions FROM v_by_rule_segment "
        "ORDER BY rule_segment, arm"
    )
    assert by_rule == [
        (g, arm, decisions, users, conversions)
        for dimension, g, arm, users, decisions, _, conversions, *_ in rows
        if dimension == "rule_segment"
    ]


def check_the_report_flags_groups_offered_far_less(shop: Any) -> None:
    f = read_fairness(shop, user_figures(shop), gross_margin=RATE, max_ratio=1.25)
    rules = {g.group: g for g in f.dimensions["rule_segment"]}
    assert [(g, rules[g].disparity.ratio, rules[g].flagged) for g in rules] == [  # type: ignore[union-attr]
        ("new", 1.0, False),
        ("potential", 1.0, False),
        ("regular", pytest.approx(3.0), True),
    ]
    assert not any(g.disparity.clear for g in rules.values())  # type: ignore[union-attr]
    groups = {g.group: g for g in f.dimensions["group"]}
    assert list(groups) == ["(none sent)", "north", "south"]
    assert groups["(none sent)"].disparity is None and not groups["(none sent)"].flagged
    assert groups["south"].flagged and groups["south"].disparity.ratio == 2.0  # type: ignore[union-attr]
    assert [g.group for g in f.dimensions["segment"]] == [
        "0 frequent browsers",
        "0 typical shoppers",
        "1 bought recently",
    ]
    new = rules["new"]
    assert new.discount_per_decision is not None and new.discount_per_decision.value == 10.0


def check_the_per_user_effect_is_by_what_was_fixed_before_the_first_decision(shop: Any) -> None:
    f = read_fairness(shop, user_figures(shop), gross_margin=RATE)
    (north,) = (g for g in f.effects["first_group"] if g.group == "north")
    (none_bought,) = (g for g in f.effects["pre_period"] if g.group.startswith("no purchase"))
    net = mean_difference(
        Moments.of([RATE * 110 - 10, 0.0]), Moments.of([RATE * 50.0, RATE * 40.0])
    )
    for g in (north, none_bought):
        assert (g.treated_users, g.control_users) == (2, 2)
        assert g.conversion == proportion_difference(1, 2, 2, 2)
        assert g.net is not None
        assert (g.net.value, g.net.low, g.net.high) == pytest.approx((net.value, net.low, net.high))
    (bought,) = (g for g in f.effects["pre_period"] if g.group.startswith("bought"))
    assert (bought.treated_users, bought.control_users, bought.net) == (1, 1, None)


def check_the_report_shows_logged_segment_names_and_rule_segments(shop: Any) -> None:
    by_segment = breakdown(shop, BY_SEGMENT, RATE)
    assert [c.key for c in by_segment] == [
        "0 frequent browsers",
        "0 typical shoppers",
        "1 bought recently",
    ]
    by_rule = breakdown(shop, BY_RULE_SEGMENT, RATE)
    assert [(c.key, c.treatment is not None, c.control is not None) for c in by_rule] == [
        ("new", True, True),
        ("potential", True, True),
        ("regular", True, True),
    ]
    report = format_report(read_evaluation(shop, gross_margin=RATE, fairness_max_ratio=1.25))
    assert "By rule segment (at each decision), descriptive" in report
    assert "By k-means segment (id and the name logged with each decision)" in report
    assert "0 typical shoppers" in report
    assert "possible: rule segment 'regular' is offered on 33.3% of treated decisions" in report
    assert "'(none sent)'" not in report.split("Fairness")[1].split("at each decision:")[0]


# --- the engine's own decisions ------------------------------------------------------------


def _cart_add(user: str, n: int, ts: int) -> ClickEvent:
    return ClickEvent(
        f"{user}-add{n}",
        user,
        ts,
        EventType.ADD_TO_CART,
        item_id="i1",
        category="shoes",
        price=40.0,
        quantity=1,
    )


def _view(user: str, n: int, ts: int) -> ClickEvent:
    return ClickEvent(
        f"{user}-view{n}", user, ts, EventType.VIEW, item_id="i1", category="shoes", price=40.0
    )


def _bought(user: str, n: int, ts: int, total: float) -> ClickEvent:
    return ClickEvent(
        f"{user}-buy{n}", user, ts, EventType.PURCHASE, order_id=f"{user}-o{n}", order_total=total
    )


# Each user's events, in time order. As on a real shop with the default decision points,
# every purchase follows a cart add, so every first decision comes before any purchase:
# every user is `new` or `potential` at their first decision, and only their later decisions
# show who they became.
ENGINE_USERS: dict[str, list[ClickEvent]] = {
    "first-visit": [_cart_add("first-visit", 1, TS)],
    "browser": [_view("browser", 1, TS), _cart_add("browser", 1, TS + 10 * DAY)],
    "regular": [
        _cart_add("regular", 1, TS),
        _bought("regular", 1, TS + HOUR, 80.0),
        _cart_add("regular", 2, TS + 3 * DAY),  # bought 3 days ago
    ],
    "big-spender": [
        _cart_add("big-spender", 1, TS),
        _bought("big-spender", 1, TS + HOUR, 400.0),
        _cart_add("big-spender", 2, TS + 3 * DAY),  # spent 400 in 30 days
    ],
    "lapsing": [
        _cart_add("lapsing", 1, TS),
        _bought("lapsing", 1, TS + HOUR, 60.0),
        _cart_add("lapsing", 2, TS + 20 * DAY),  # bought 20 days ago, nothing since
    ],
}


def write_engine_shop(client: Any) -> EngineOutput:
    """Every ``ENGINE_USERS`` event through the engine (default decision points), and what it
    produced, written as the sinks write it."""
    engine = make_engine(triggers=frozenset({"add_to_cart", "cart_return"}))
    engine.snapshot.number_and_name(1)
    out = EngineOutput()
    for events in ENGINE_USERS.values():
        state = engine.new_state()
        for event in events:
            engine.handle(state, event, out)
    events = [e for events in ENGINE_USERS.values() for e in events]
    _write(client, out.decisions, out.outcomes, events)
    return out


def check_the_engines_decisions_reach_every_rule_segment(shop: Any, out: EngineOutput) -> None:
    logged = {d.user_id: [] for d in out.decisions}  # type: dict[str, list[str]]
    for d in out.decisions:
        logged[d.user_id].append(d.rule_segment)
    assert logged == {
        "first-visit": ["new"],
        "browser": ["potential"],
        "regular": ["new", "regular"],
        "big-spender": ["new", "high_value"],
        "lapsing": ["new", "at_risk"],
    }
    f = read_fairness(shop, user_figures(shop), gross_margin=RATE)
    assert sorted(g.group for g in f.dimensions["rule_segment"]) == sorted(RULE_SEGMENTS)
    returning = {g.group: g.treated_decisions for g in f.dimensions["new_vs_returning"]}
    assert returning == {"new": 4, "returning": 4}

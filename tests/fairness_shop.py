"""Named segments and fairness through ClickHouse, as test input for both engines: a small shop
whose decisions carry segment names, rule segments and groups, and the figures migration
0010's views and the report must give, worked by hand. tests/current_clickhouse and
tests/integration (18.16) run the same checks.

Rate 0.3. Every row written twice, merges stopped: only FINAL keeps a copy from counting.

    user  arm        first decision: segment, rule, group    decisions, offers   bought
    u1    treatment  0, new, north       d1 pct10 sent; +3 d d1b (segment 1,
                                         regular, south) none sent              100, 10 off
    u2    control    0, new, north       d2 (policy pct10)                      50
    u3    treatment  1, regular, south   d3 none                                -
    u4    control    1, regular, south   d4 (policy pct10)                      -
    u5    treatment  1, potential, ''    d5 pct20 sent                          -
    u6    control    0, potential, ''    d6 (policy none), model v1             40

Segment 0 was "typical shoppers" in model v1 and "frequent browsers" in v2: its name now is
v2's. u1's later decision does not move u1 out of the groups of their first.

Offer rates (offers per treated decision): rule segment new 1/2, regular 0/1, potential 1/1;
so new is 2x and regular infinitely below the highest, both beyond 1.25 but neither clear of
noise at the intervals' ends (a user or two). Returning users (u3, u5 treated; u4, u6 control)
are the one group with two users in each arm: conversion 0/2 against 1/2, net profit per user
0 and 0 against 0 and 0.3 x 40 = 12.
"""

from __future__ import annotations

from typing import Any

import pytest

from promo.clickhouse import insert
from promo.fairness import read_fairness, segment_labels
from promo.report import format_report
from promo.report_figures import BY_RULE_SEGMENT, BY_SEGMENT, breakdown, read_evaluation
from schemas.decisions import NO_OFFER, Decision
from schemas.events import ClickEvent, EventType
from schemas.outcomes import Outcome, OutcomeType
from streams.evaluation import Moments, mean_difference, proportion_difference
from streams.sink_rows import (
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    decision_row,
    event_row,
    outcome_row,
)

TS = 1_700_000_000_000
MINUTE = 60_000
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
D2 = _decision("d2", "u2", "pct10", 0, "new", "north", control=True)
D3 = _decision("d3", "u3", NO_OFFER, 1, "regular", "south")
D4 = _decision("d4", "u4", "pct10", 1, "regular", "south", control=True)
D5 = _decision("d5", "u5", "pct20", 1, "potential", "")
D6 = _decision("d6", "u6", NO_OFFER, 0, "potential", "", control=True, model_version=1)
DECISIONS = (D1, D1B, D2, D3, D4, D5, D6)


def _purchase(name: str, user: str, total: float) -> ClickEvent:
    return ClickEvent(
        name, user, TS + MINUTE, EventType.PURCHASE, order_id=f"o-{name}", order_total=total
    )


BUY1, BUY2, BUY6 = (
    _purchase("e1", "u1", 100.0),
    _purchase("e2", "u2", 50.0),
    _purchase("e6", "u6", 40.0),
)


def _outcome(d: Decision, kind: OutcomeType, buy: ClickEvent, discount: float = 0.0) -> Outcome:
    return Outcome(
        outcome_id=f"{d.decision_id}:{kind.value}:{buy.event_id}",
        decision_id=d.decision_id,
        user_id=d.user_id,
        ts=buy.ts,
        type=kind,
        source_event_id=buy.event_id,
        offer_code=d.chosen_offer,
        control=d.control,
        order_total=buy.order_total or 0.0,
        discount=discount,
    )


OUTCOMES = (
    _outcome(D1, OutcomeType.PURCHASE, BUY1, 10.0),
    _outcome(D1, OutcomeType.REDEEMED, BUY1, 10.0),
    _outcome(D2, OutcomeType.PURCHASE, BUY2),
    _outcome(D6, OutcomeType.PURCHASE, BUY6),
)


def write_shop(client: Any) -> None:
    """The shop on a migrated database, every row written twice with merges stopped."""
    for table in ("events", "decisions", "outcomes"):
        client.execute(f"SYSTEM STOP MERGES {table}")
    for _ in range(2):
        insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in DECISIONS])
        insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in OUTCOMES])
        events = (BUY1, BUY2, BUY6)
        insert(client, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(events)])


def check_a_segment_is_named_by_its_latest_model_version(shop: Any) -> None:
    rows = shop.execute("SELECT segment, name, first_model_version FROM v_segment_names")
    assert sorted(rows) == [(0, "frequent browsers", 1), (1, "bought recently", 2)]
    assert segment_labels(shop) == {0: "0 frequent browsers", 1: "1 bought recently"}


def check_the_decisions_keep_their_groups(shop: Any) -> None:
    rows = shop.execute(
        "SELECT decision_id, segment_name, rule_segment, user_group FROM decisions FINAL "
        "WHERE user_id = 'u1' ORDER BY decision_id"
    )
    assert rows == [
        ("d1", "frequent browsers", "new", "north"),
        ("d1b", "bought recently", "regular", "south"),
    ]


def check_each_user_is_in_the_groups_of_their_first_decision(shop: Any) -> None:
    rows = shop.execute(
        "SELECT user_id, first_segment, first_rule_segment, first_user_group, policy_offers "
        "FROM v_user_groups ORDER BY user_id"
    )
    assert rows == [
        ("u1", 0, "new", "north", 1),
        ("u2", 0, "new", "north", 1),
        ("u3", 1, "regular", "south", 0),
        ("u4", 1, "regular", "south", 1),
        ("u5", 1, "potential", "", 1),
        ("u6", 0, "potential", "", 0),
    ]


def check_the_fairness_view_counts_users_decisions_and_offers(shop: Any) -> None:
    rows = shop.execute(
        "SELECT dimension, group_name, arm, users, sum_decisions, sum_offers, sum_policy_offers, "
        "converters, sum_discount, sum_rate_base, sum_net_fixed "
        "FROM v_fairness ORDER BY dimension, group_name, arm"
    )
    assert rows == [
        ("group", "", "control", 1, 1, 0, 0, 1, 0.0, 40.0, 0.0),
        ("group", "", "treatment", 1, 1, 1, 1, 0, 0.0, 0.0, 0.0),
        ("group", "north", "control", 1, 1, 0, 1, 1, 0.0, 50.0, 0.0),
        ("group", "north", "treatment", 1, 2, 1, 1, 1, 10.0, 110.0, -10.0),
        ("group", "south", "control", 1, 1, 0, 1, 0, 0.0, 0.0, 0.0),
        ("group", "south", "treatment", 1, 1, 0, 0, 0, 0.0, 0.0, 0.0),
        ("new_vs_returning", "new", "control", 1, 1, 0, 1, 1, 0.0, 50.0, 0.0),
        ("new_vs_returning", "new", "treatment", 1, 2, 1, 1, 1, 10.0, 110.0, -10.0),
        ("new_vs_returning", "returning", "control", 2, 2, 0, 1, 1, 0.0, 40.0, 0.0),
        ("new_vs_returning", "returning", "treatment", 2, 2, 1, 1, 0, 0.0, 0.0, 0.0),
        ("rule_segment", "new", "control", 1, 1, 0, 1, 1, 0.0, 50.0, 0.0),
        ("rule_segment", "new", "treatment", 1, 2, 1, 1, 1, 10.0, 110.0, -10.0),
        ("rule_segment", "potential", "control", 1, 1, 0, 0, 1, 0.0, 40.0, 0.0),
        ("rule_segment", "potential", "treatment", 1, 1, 1, 1, 0, 0.0, 0.0, 0.0),
        ("rule_segment", "regular", "control", 1, 1, 0, 1, 0, 0.0, 0.0, 0.0),
        ("rule_segment", "regular", "treatment", 1, 1, 0, 0, 0, 0.0, 0.0, 0.0),
        ("segment", "0", "control", 2, 2, 0, 1, 2, 0.0, 90.0, 0.0),
        ("segment", "0", "treatment", 1, 2, 1, 1, 1, 10.0, 110.0, -10.0),
        ("segment", "1", "control", 1, 1, 0, 1, 0, 0.0, 0.0, 0.0),
        ("segment", "1", "treatment", 2, 2, 1, 1, 0, 0.0, 0.0, 0.0),
    ]


def check_the_report_flags_groups_offered_far_less(shop: Any) -> None:
    f = read_fairness(shop, gross_margin=RATE, max_ratio=1.25)
    rules = {g.group: g for g in f.dimensions["rule_segment"]}
    assert [(g, rules[g].disparity.ratio, rules[g].flagged) for g in rules] == [  # type: ignore[union-attr]
        ("new", 2.0, True),
        ("potential", 1.0, False),
        ("regular", float("inf"), True),
    ]
    assert not any(g.disparity.clear for g in rules.values())  # type: ignore[union-attr]
    assert [g.group for g in f.dimensions["group"]] == ["(none sent)", "north", "south"]
    assert [g.group for g in f.dimensions["segment"]] == [
        "0 frequent browsers",
        "1 bought recently",
    ]
    assert not any(g.flagged for g in f.dimensions["segment"])  # 1/2 and 1/2
    new = rules["new"]
    assert new.discount_per_user is not None and new.discount_per_user.value == 10.0
    assert new.conversion is None  # one user in each arm: no interval


def check_the_per_user_effect_of_a_group_is_the_headlines_maths(shop: Any) -> None:
    f = read_fairness(shop, gross_margin=RATE)
    (returning,) = (g for g in f.dimensions["new_vs_returning"] if g.group == "returning")
    assert (returning.treated_users, returning.control_users) == (2, 2)
    assert returning.conversion == proportion_difference(0, 2, 1, 2)
    net = mean_difference(Moments.of([0.0, 0.0]), Moments.of([0.0, RATE * 40.0]))
    assert returning.net is not None
    assert (returning.net.value, returning.net.low, returning.net.high) == pytest.approx(
        (net.value, net.low, net.high)
    )


def check_the_report_shows_segment_names_and_rule_segments(shop: Any) -> None:
    by_segment = breakdown(shop, BY_SEGMENT, RATE, segment_labels(shop))
    assert [c.key for c in by_segment] == ["0 frequent browsers", "1 bought recently"]
    by_rule = breakdown(shop, BY_RULE_SEGMENT, RATE)
    assert [(c.key, c.treatment is not None, c.control is not None) for c in by_rule] == [
        ("new", True, True),
        ("potential", True, True),
        ("regular", True, True),
    ]
    report = format_report(read_evaluation(shop, gross_margin=RATE, fairness_max_ratio=1.25))
    assert "By rule segment (at each decision), descriptive" in report
    assert "0 frequent browsers" in report
    assert "possible: rule segment 'regular' is offered on 0.0% of treated decisions" in report

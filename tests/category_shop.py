"""Category offers through ClickHouse, as test input for both engines: decisions on a category
offer, the per-target view the report reads, worked by hand. tests/current_clickhouse and
tests/integration (18.16) run the same check.

    c1 treated  cat30 on bags, sent     -> buy 100, coupon 15 off the bags (net 0.3 x 100 - 15)
    c2 treated  cat30 on bags, withheld -> no purchase (the budget held it back: not in the view)
    c3 control  cat30 on bags (would have been sent) -> buy 50 (net 0.3 x 50)
    c4 control  cat30 on toys           -> no purchase
    c5 treated  pct10 (no category)     -> not in the view
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from promo.clickhouse import insert
from promo.report_figures import BY_TARGET, breakdown
from schemas.decisions import NO_OFFER
from schemas.outcomes import OutcomeType
from streams.sink_rows import DECISION_COLUMNS, OUTCOME_COLUMNS, decision_row, outcome_row
from tests.margin_shop import RATE, TS, _decision, _purchase, outcome_of

C1 = replace(_decision("c1", "v1", "cat30"), target_category="bags")
C2 = replace(_decision("c2", "v2", "cat30"), chosen_offer=NO_OFFER, target_category="bags")
C3 = replace(_decision("c3", "v3", "cat30", control=True), target_category="bags")
C4 = replace(_decision("c4", "v4", "cat30", control=True), target_category="toys")
C5 = _decision("c5", "v5", "pct10")
BUY1 = _purchase("f1", "v1", TS + 60_000, 85.0)
BUY3 = _purchase("f3", "v3", TS + 60_000, 50.0)
OUTCOMES = (
    outcome_of(C1, OutcomeType.PURCHASE, BUY1, 15.0),
    outcome_of(C1, OutcomeType.REDEEMED, BUY1, 15.0),
    outcome_of(C3, OutcomeType.PURCHASE, BUY3),
)


def check_decisions_on_category_offers_by_target(client: Any) -> None:
    """On a migrated, empty database: each sent category offer and each control decision's
    would-be one counts under its offer and category; withheld ones and whole-order offers
    do not."""
    insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in (C1, C2, C3, C4, C5)])
    insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in OUTCOMES])
    by_target = {c.key: c for c in breakdown(client, BY_TARGET, RATE)}
    assert set(by_target) == {"cat30 on bags", "cat30 on toys"}
    bags, toys = by_target["cat30 on bags"], by_target["cat30 on toys"]
    assert bags.treatment is not None and bags.treatment["decisions"] == 1
    assert bags.control is not None and bags.control["decisions"] == 1
    assert (bags.net_treatment, bags.net_control) == (
        pytest.approx(RATE * 100.0 - 15.0),
        pytest.approx(RATE * 50.0),
    )
    assert toys.treatment is None and toys.control is not None and toys.net_control == 0.0

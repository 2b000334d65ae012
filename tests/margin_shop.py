"""Per-item margins through ClickHouse, as test input for both engines: a small shop whose
orders carry their own margins, and the figures the views and the report must give, worked by
hand. tests/current_clickhouse and tests/integration (18.16) run the same checks.

Rate 0.3. Every row written twice, merges stopped: only FINAL keeps a copy from counting.

    u1 treated  -1d buy 20, margin 12 (pre-period)
                 0 d1 pct10 -> buy 2 x 50 (margin 20) + 10 (margin 4), 10 % off:
                   paid 99, discount 11, margin 44        profit 44 - 11        = 33
    u2 control   0 d2 -> buy 50, no items                 profit 0.3 x 50       = 15
    u3 treated   0 d3 none -> buy 40 (margin 30) + 20 (no margin): margin unknown,
                   paid 60                                profit 0.3 x 60       = 18

At the global rate alone d1 would have made 0.3 x 110 - 11 = 22.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from promo.clickhouse import apply_migrations, insert
from promo.off_policy import off_policy_estimates
from promo.report_figures import BY_OFFER, breakdown, decision_net, query, user_figures
from schemas.decisions import NO_OFFER, Decision
from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import Outcome, OutcomeType
from streams.off_policy import TargetPolicy
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


def _decision(name: str, user: str, offer: str, control: bool = False) -> Decision:
    return Decision(
        decision_id=name,
        user_id=user,
        ts=TS,
        trigger_event_id=f"ev-{name}",
        trigger="add_to_cart",
        segment=0,
        control=control,
        chosen_offer=NO_OFFER if control else offer,
        policy_offer=offer,
        propensity=1.0,
        scores={NO_OFFER: 0.0, offer: 1.0},
        purchase_probs={NO_OFFER: 0.1, offer: 0.3},
        features=(0.0,),
        expected_order_value=80.0,
        offer_id=None if control or offer == NO_OFFER else f"of-{name}",
        expires_at=TS + 2 * DAY,
        policy_version="v1",
        model_version=1,
    )


def _purchase(name: str, user: str, ts: int, total: float, *lines: LineItem) -> ClickEvent:
    return ClickEvent(
        name, user, ts, EventType.PURCHASE, order_id=f"o-{name}", order_total=total, items=lines
    )


D1 = _decision("d1", "u1", "pct10")
D2 = _decision("d2", "u2", "pct10", control=True)
D3 = _decision("d3", "u3", NO_OFFER)
BUY1 = _purchase(
    "e1",
    "u1",
    TS + MINUTE,
    99.0,
    LineItem("a", 50.0, 2, margin=20.0),
    LineItem("b", 10.0, 1, margin=4.0),
)
BUY2 = _purchase("e2", "u2", TS + MINUTE, 50.0)
BUY3 = _purchase(
    "e3", "u3", TS + MINUTE, 60.0, LineItem("a", 40.0, 1, margin=30.0), LineItem("c", 20.0)
)
PRE = _purchase("e0", "u1", TS - DAY, 20.0, LineItem("d", 20.0, 1, margin=12.0))


def outcome_of(d: Decision, kind: OutcomeType, buy: ClickEvent, discount: float = 0.0) -> Outcome:
    """The outcome the engine's attribution would record for ``d`` from ``buy``."""
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
        order_margin=buy.order_margin,  # as streams.attribution sets it
    )


OUTCOMES = (
    outcome_of(D1, OutcomeType.PURCHASE, BUY1, 11.0),
    outcome_of(D1, OutcomeType.REDEEMED, BUY1, 11.0),
    outcome_of(D2, OutcomeType.PURCHASE, BUY2),
    outcome_of(D3, OutcomeType.PURCHASE, BUY3),
)


def write_shop(client: Any) -> None:
    """The shop on a migrated database, every row written twice with merges stopped."""
    for table in ("events", "decisions", "outcomes"):
        client.execute(f"SYSTEM STOP MERGES {table}")
    for _ in range(2):
        insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in (D1, D2, D3)])
        insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in OUTCOMES])
        events = (PRE, BUY1, BUY2, BUY3)
        insert(client, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(events)])


def check_the_events_table_keeps_the_margins(shop: Any) -> None:
    rows = shop.execute(
        "SELECT event_id, item_margins, order_margin FROM events FINAL "
        "WHERE event_id IN ('e1', 'e2', 'e3') ORDER BY event_id"
    )
    assert rows == [("e1", [20.0, 4.0], 44.0), ("e2", [], -1.0), ("e3", [30.0, -1.0], -1.0)]


def check_each_decisions_net_profit_uses_its_orders_margin(shop: Any) -> None:
    rows = shop.execute(
        "SELECT decision_id, revenue, discount, rate_base, net_fixed, "
        f"net_fixed + {RATE} * rate_base AS profit FROM v_decision_outcomes ORDER BY decision_id"
    )
    assert rows == [
        ("d1", 99.0, 11.0, 0.0, 33.0, 33.0),
        ("d2", 50.0, 0.0, 50.0, 0.0, pytest.approx(15.0)),
        ("d3", 60.0, 0.0, 60.0, 0.0, pytest.approx(18.0)),
    ]


def check_the_report_per_decision_net_profit(shop: Any) -> None:
    arms = {r["arm"]: r for r in query(shop, "SELECT * FROM v_treatment_vs_control")}
    net = decision_net(arms["treatment"], RATE)  # d1 and d3
    assert (net.n, net.total) == (2, pytest.approx(33.0 + 18.0))
    assert net.total_sq == pytest.approx(33.0**2 + 18.0**2)
    (offer,) = (c for c in breakdown(shop, BY_OFFER, RATE) if c.key == "pct10")
    assert (offer.net_treatment, offer.net_control) == (33.0, pytest.approx(15.0))


def check_the_report_per_user_net_profit_and_its_covariate(shop: Any) -> None:
    users = user_figures(shop)
    treatment, control = users["treatment"], users["control"]
    assert sorted(treatment.net(RATE).tolist()) == pytest.approx([18.0, 33.0])
    assert control.net(RATE).tolist() == pytest.approx([15.0])
    # u1 bought for 20 at a margin of 12 the day before: 12, not 0.3 x 20 = 6.
    assert sorted(treatment.covariate(RATE).tolist()) == pytest.approx([0.0, 12.0])


def check_the_off_policy_reward_uses_the_orders_margin(shop: Any) -> None:
    (never,) = off_policy_estimates(shop, gross_margin=RATE, targets=[TargetPolicy.never()])
    # "none" matches d2 (control) and d3 (the policy sent nothing): (15 + 18) / 3 decisions.
    assert never.profit.ips.value == pytest.approx((15.0 + 18.0) / 3)
    (always,) = off_policy_estimates(
        shop, gross_margin=RATE, targets=[TargetPolicy.always("pct10")]
    )
    assert always.profit.ips.value == pytest.approx(33.0 / 3)  # d1 alone, propensity 1


#: Columns the sinks wrote before migration 0009 added the margins (it appends them), and
#: those later migrations added after them (0010: segment names, rule segments, groups;
#: 0011: the abuse score; 0012: the category offers' target; 0014: the interest category).
MARGIN_COLUMNS = ("margin", "item_margins", "order_margin")
LATER_COLUMNS = (
    "segment_name",
    "rule_segment",
    "user_group",
    "abuse_score",
    "target_category",
    "interest_category",
)


def check_rows_written_before_0009_read_as_unknown(client: Any, ddl_dir: Path, tmp: Path) -> None:
    """On a database that stored rows under 0008, applying 0009 gives them the unknown margin
    (-1): their profit stays the rate's, as before."""
    before = tmp / "ddl-0008"
    before.mkdir()
    for path in sorted(ddl_dir.glob("*.sql")):
        if path.name < "0009":
            shutil.copy(path, before)
    apply_migrations(client, before)
    old = (*MARGIN_COLUMNS, *LATER_COLUMNS)
    old_events = [c for c in EVENT_COLUMNS if c not in old]
    old_outcomes = [c for c in OUTCOME_COLUMNS if c not in old]
    old_decisions = [c for c in DECISION_COLUMNS if c not in old]
    row = dict(zip(DECISION_COLUMNS, decision_row(D1), strict=True))
    insert(client, "decisions", old_decisions, [tuple(row[c] for c in old_decisions)])
    row = dict(zip(EVENT_COLUMNS, event_row(BUY1, 0, 1), strict=True))
    insert(client, "events", old_events, [tuple(row[c] for c in old_events)])
    for outcome in OUTCOMES[:2]:
        row = dict(zip(OUTCOME_COLUMNS, outcome_row(outcome), strict=True))
        insert(client, "outcomes", old_outcomes, [tuple(row[c] for c in old_outcomes)])
    shutil.copy(ddl_dir / "0009_order_margins.sql", before)
    assert apply_migrations(client, before) == ["0009_order_margins.sql"]
    assert client.execute("SELECT margin, item_margins, order_margin FROM events FINAL") == [
        (-1.0, [], -1.0)
    ]
    assert client.execute("SELECT DISTINCT order_margin FROM outcomes FINAL") == [(-1.0,)]
    rows = client.execute("SELECT revenue, discount, rate_base, net_fixed FROM v_decision_outcomes")
    assert rows == [(99.0, 11.0, 110.0, -11.0)]  # net profit 0.3 x 110 - 11, as before

"""A hand-worked dataset for the per-user effect over time (``promo.cumulative_users``), read
by the same tests on current ClickHouse (tests/current_clickhouse) and on the 18.16 server
(tests/integration).

Three UTC days from DAY0 (2023-11-15, midnight); ``h`` = hours after DAY0 (d1 10h = 34h)::

    user arm        first decision  purchases (coupon)                     before
    t1   treatment  10h (and 30h)   100 (10) at 11h, 60 (6) at 24h exactly 20 two days before
    t2   treatment  10h             40 at 57h                              5 at 9h (same day)
    t3   treatment  32h             30 (3) at 33h                          -
    t4   treatment  71h             -                                      -
    c1   control    10h             50 at 36h                              10 eight days before
    c2   control    10h             -                                      30 seven days before
    c3   control    32h             20 at 50h                              -

The 60 at midnight opens day 1, so day 0 counts neither it nor its coupon; t2's 5 before its first
decision is its pre-period, not an outcome; c1's 10 is outside the 7-day pre-period, c2's 30
exactly on its edge (inside). The last day is day 2, holding every record. Two orders carry
their own margin (their lines'): t3's 30 (margin 12: net 12 - 3 = 9, nothing at the report's
rate) and c2's 30 (margin 9, in the pre-period); every other order is valued at the rate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np

from promo.clickhouse import insert
from promo.report_figures import UserFigures
from schemas.decisions import NO_OFFER, Decision
from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import Outcome, OutcomeType
from streams.sink_rows import (
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    decision_row,
    event_row,
    outcome_row,
)

HOUR = 3_600_000
DAY = 86_400_000
DAY0 = 19_676 * DAY  # 2023-11-15 00:00 UTC
DAYS = [dt.date(2023, 11, 15), dt.date(2023, 11, 16), dt.date(2023, 11, 17)]
MARGIN = 0.5

# (user, control, hours of its decisions)
DECISIONS = [
    ("t1", False, (10, 30)),
    ("t2", False, (10,)),
    ("t3", False, (32,)),
    ("t4", False, (71,)),
    ("c1", True, (10,)),
    ("c2", True, (10,)),
    ("c3", True, (32,)),
]
# (user, ms after DAY0, order total, coupon discount, the order's margin or None: unknown)
PURCHASES = [
    ("t1", 11 * HOUR, 100.0, 10.0, None),
    ("t1", 24 * HOUR, 60.0, 6.0, None),
    ("t1", 10 * HOUR - 2 * DAY, 20.0, 0.0, None),
    ("t2", 57 * HOUR, 40.0, 0.0, None),
    ("t2", 9 * HOUR, 5.0, 0.0, None),
    ("t3", 33 * HOUR, 30.0, 3.0, 12.0),
    ("c1", 36 * HOUR, 50.0, 0.0, None),
    ("c1", 10 * HOUR - 8 * DAY, 10.0, 0.0, None),
    ("c2", 10 * HOUR - 7 * DAY, 30.0, 0.0, 9.0),
    ("c3", 50 * HOUR, 20.0, 0.0, None),
]

# Per day, each user known by its end: the columns of the headline's query, (arm, converted,
# revenue, discount, rate_base, net_fixed, pre_purchases, pre_rate_base, pre_net_fixed); net
# profit = net_fixed + rate * rate_base, where rate_base is revenue + discount of orders
# without a margin and net_fixed the known margins minus every discount.
T, C = "treatment", "control"
EXPECTED: dict[dt.date, dict[str, tuple[Any, ...]]] = {
    DAYS[0]: {
        "t1": (T, 1, 100.0, 10.0, 110.0, -10.0, 1, 20.0, 0.0),
        "t2": (T, 0, 0.0, 0.0, 0.0, 0.0, 1, 5.0, 0.0),
        "c1": (C, 0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0),
        "c2": (C, 0, 0.0, 0.0, 0.0, 0.0, 1, 0.0, 9.0),
    },
    DAYS[1]: {
        "t1": (T, 1, 160.0, 16.0, 176.0, -16.0, 1, 20.0, 0.0),
        "t2": (T, 0, 0.0, 0.0, 0.0, 0.0, 1, 5.0, 0.0),
        "t3": (T, 1, 30.0, 3.0, 0.0, 9.0, 0, 0.0, 0.0),
        "c1": (C, 1, 50.0, 0.0, 50.0, 0.0, 0, 0.0, 0.0),
        "c2": (C, 0, 0.0, 0.0, 0.0, 0.0, 1, 0.0, 9.0),
        "c3": (C, 0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0),
    },
    DAYS[2]: {
        "t1": (T, 1, 160.0, 16.0, 176.0, -16.0, 1, 20.0, 0.0),
        "t2": (T, 1, 40.0, 0.0, 40.0, 0.0, 1, 5.0, 0.0),
        "t3": (T, 1, 30.0, 3.0, 0.0, 9.0, 0, 0.0, 0.0),
        "t4": (T, 0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0),
        "c1": (C, 1, 50.0, 0.0, 50.0, 0.0, 0, 0.0, 0.0),
        "c2": (C, 0, 0.0, 0.0, 0.0, 0.0, 1, 0.0, 9.0),
        "c3": (C, 1, 20.0, 0.0, 20.0, 0.0, 0, 0.0, 0.0),
    },
}
#: Columns of an EXPECTED row after the arm (UserFigures' fields, in order).
FIGURES = range(1, 9)


def by_hand(users: dict[str, tuple[Any, ...]]) -> dict[str, UserFigures]:
    """Each arm's figures from a day's rows of EXPECTED."""
    return {
        arm: UserFigures(
            *(np.array([row[i] for row in users.values() if row[0] == arm], float)
              for i in FIGURES)
        )
        for arm in ("treatment", "control")
    }  # fmt: skip


def decision(user: str, control: bool, n: int, hour: int) -> Decision:
    ts = DAY0 + hour * HOUR
    return Decision(
        decision_id=f"de-{user}-{n}",
        user_id=user,
        ts=ts,
        trigger_event_id=f"ev-{user}-{n}",
        trigger="view",
        segment=0,
        control=control,
        chosen_offer=NO_OFFER if control else "pct10",
        policy_offer="pct10",
        propensity=0.9,
        scores={},
        purchase_probs={},
        features=(),
        expected_order_value=60.0,
        offer_id=None if control else f"of-{user}-{n}",
        expires_at=ts + 2 * DAY,
        policy_version="v1",
        model_version=1,
    )


def purchase(user: str, n: int, ts: int, total: float, margin: float | None = None) -> ClickEvent:
    """An order; with ``margin``, of one line carrying it (an order's margin is its lines')."""
    items = () if margin is None else (LineItem(f"i-{user}-{n}", total, 1, margin=margin),)
    return ClickEvent(
        f"buy-{user}-{n}",
        user,
        ts,
        EventType.PURCHASE,
        order_id=f"o-{user}-{n}",
        order_total=total,
        items=items,
    )


def redeemed(
    user: str, n: int, ts: int, total: float, discount: float, margin: float | None = None
) -> Outcome:
    return Outcome(
        outcome_id=f"de-{user}-0:redeemed:{n}",
        decision_id=f"de-{user}-0",
        user_id=user,
        ts=ts,
        type=OutcomeType.REDEEMED,
        source_event_id=f"buy-{user}-{n}",
        offer_code="pct10",
        control=False,
        order_total=total,
        discount=discount,
        order_margin=margin,
    )


def write(
    client: Any,
    decisions: Sequence[Decision] = (),
    events: Sequence[ClickEvent] = (),
    outcomes: Sequence[Outcome] = (),
) -> None:
    insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in decisions])
    insert(client, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(events)])
    insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in outcomes])


def write_dataset(client: Any) -> None:
    """Every record of the table above, once; call twice for a redelivery."""
    decisions = [
        decision(user, control, n, hour)
        for user, control, hours in DECISIONS
        for n, hour in enumerate(hours)
    ]
    events = [
        purchase(user, n, DAY0 + at, total, margin)
        for n, (user, at, total, _, margin) in enumerate(PURCHASES)
    ]
    outcomes = [
        redeemed(user, n, DAY0 + at, total, discount, margin)
        for n, (user, at, total, discount, margin) in enumerate(PURCHASES)
        if discount
    ]
    write(client, decisions, events, outcomes)

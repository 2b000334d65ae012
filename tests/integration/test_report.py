"""The report on a real ClickHouse: an empty database, then a small dataset worked out by hand.

The dataset (every decision at the same time, margin 40 %)::

    decision  user arm        segment  offer (control: policy's)  outcome
    d1        u1   treatment  0        pct10           bought 100, coupon took 10
    d2        u2   treatment  0        pct10           shown, no purchase
    d3        u3   treatment  1        free_shipping   bought 50, coupon took 5
    d4        u4   treatment  1        none            bought 40
    d5        u5   control    0        pct10           bought 80
    d6        u6   control    0        pct10           -
    d7        u7   control    1        free_shipping   -
    d8        u8   control    1        none            -

Treatment: 3/4 converted, revenue 190/4 = 47.50, discount 15/4 = 3.75,
net margin 0.4 * (190 + 15) - 15 = 67 -> 16.75 per decision.
Control: 1/4 converted, revenue 80/4 = 20.00, net margin 0.4 * 80 = 32 -> 8.00 per decision.
ROI = (16.75 - 8.00) / 3.75 = +2.33.
"""

from __future__ import annotations

import re

from clickhouse_driver import Client

from promo.clickhouse import insert
from promo.report import build_report
from schemas.dead_letters import DeadLetter, RejectReason
from schemas.decisions import Decision
from schemas.events import ClickEvent, EventType
from schemas.outcomes import Outcome, OutcomeType
from streams.sink_rows import (
    DEAD_LETTER_COLUMNS,
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    dead_letter_row,
    decision_row,
    event_row,
    outcome_row,
)

TS = 1_700_000_000_000
MARGIN = 0.4

# (decision, user, control, segment, offer, purchase total, discount, shown)
DATASET = [
    ("d1", "u1", False, 0, "pct10", 100.0, 10.0, True),
    ("d2", "u2", False, 0, "pct10", None, 0.0, True),
    ("d3", "u3", False, 1, "free_shipping", 50.0, 5.0, False),
    ("d4", "u4", False, 1, "none", 40.0, 0.0, False),
    ("d5", "u5", True, 0, "pct10", 80.0, 0.0, False),
    ("d6", "u6", True, 0, "pct10", None, 0.0, False),
    ("d7", "u7", True, 1, "free_shipping", None, 0.0, False),
    ("d8", "u8", True, 1, "none", None, 0.0, False),
]

TRUTH_COLUMNS = (
    "run_id",
    "user_id",
    "action",
    "response_type",
    "p_purchase",
    "expected_revenue",
    "expected_discount",
    "expected_profit",
)
# The simulator's truth: the same expected profit per action for every user.
TRUE_PROFIT = {"none": 1.0, "pct10": 2.0, "free_shipping": 0.5}


def test_empty_database(migrated: Client) -> None:
    report = build_report(migrated, gross_margin=0.3)
    assert "no decisions yet" in report
    assert "Dead letters by reason\n  none" in report


def _load(client: Client) -> None:
    decisions, outcomes = [], []
    for name, user, control, segment, offer, total, discount, shown in DATASET:
        d = Decision(
            decision_id=f"de-{name:0>24}",
            user_id=user,
            ts=TS,
            trigger_event_id=f"ev-{name}",
            trigger="view",
            segment=segment,
            control=control,
            chosen_offer="none" if control else offer,
            policy_offer=offer,
            propensity=0.9,
            scores={},
            purchase_probs={},
            features=(),
            expected_order_value=60.0,
            offer_id=None if control or offer == "none" else f"of-{name}",
            expires_at=TS + 172_800_000,
            policy_version="greedy-profit-v1",
            model_version=1,
        )
        decisions.append(d)
        kinds = [OutcomeType.SHOWN] if shown else []
        if total is not None:
            kinds.append(OutcomeType.PURCHASE)
            if discount:
                kinds.append(OutcomeType.REDEEMED)
        for kind in kinds:
            buying = kind is not OutcomeType.SHOWN
            outcomes.append(
                Outcome(
                    outcome_id=f"{d.decision_id}:{kind.value}",
                    decision_id=d.decision_id,
                    user_id=user,
                    ts=TS + 3_600_000,
                    type=kind,
                    source_event_id=f"buy-{name}" if buying else f"show-{name}",
                    offer_code=d.chosen_offer,
                    control=control,
                    order_total=total if buying and total else 0.0,
                    discount=discount if buying else 0.0,
                )
            )
    events = [
        ClickEvent("e1", "u1", TS, EventType.VIEW, item_id="i", category="c", price=5.0),
        ClickEvent("e2", "u2", TS, EventType.VIEW, item_id="i", category="c", price=5.0),
        ClickEvent("e3", "u1", TS, EventType.PURCHASE, order_id="o1", order_total=100.0),
    ]
    letters = [
        DeadLetter("clickstream", 0, 1, None, RejectReason.INVALID_JSON, "x", "eA==", "x", TS),
        DeadLetter("clickstream", 0, 2, "u1", RejectReason.MISSING_FIELD, "ts", "e30=", "{}", TS),
        DeadLetter("clickstream", 1, 2, "u2", RejectReason.MISSING_FIELD, "ts", "e30=", "{}", TS),
    ]
    insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in decisions])
    insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in outcomes])
    insert(client, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(events)])
    insert(client, "dead_letters", DEAD_LETTER_COLUMNS, [dead_letter_row(x) for x in letters])


def _load_simulator_truth(client: Client) -> None:
    users = [f"u{i}" for i in range(1, 9)]
    runs = [
        # An older run with the same user ids and other truths: it must be ignored.
        ("run-old", 1_600_000_000, TS - 10_000_000, TS + 10_000_000, 100.0),
        ("run-new", 1_700_000_500, TS - 1000, TS + 1000, 0.0),
    ]
    for run_id, started_at, start_ms, end_ms, shift in runs:
        insert(
            client,
            "sim_runs",
            ("run_id", "started_at", "sim_start_ms", "sim_end_ms", "users"),
            [(run_id, started_at, start_ms, end_ms, len(users))],
        )
        truth = [
            (run_id, user, action, "any", 0.1, 10.0, 0.0, profit + shift)
            for user in users
            for action, profit in TRUE_PROFIT.items()
        ]
        insert(client, "sim_truth", TRUTH_COLUMNS, truth)


def _section(report: str, title: str) -> str:
    """The lines of the section whose title starts with ``title``."""
    for section in report.split("\n\n"):
        if section.startswith(title):
            return section
    raise AssertionError(f"no section {title!r} in:\n{report}")


def _row(section: str, first_cell: str) -> list[str]:
    """A table row's cells (cells are separated by two spaces or more)."""
    for line in section.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in:\n{section}")


def test_report_on_a_known_dataset(migrated: Client) -> None:
    _load(migrated)
    _load(migrated)  # a redelivery of everything changes nothing
    _load_simulator_truth(migrated)
    report = build_report(migrated, gross_margin=MARGIN)
    print(report)  # shown by pytest on failure, and with -s

    arms = _section(report, "Treatment vs control (per decision")
    treatment = _row(arms, "treatment")
    assert treatment[1:4] == ["4", "4", "3"]
    assert treatment[4].startswith("75.00% [")
    assert treatment[5].startswith("47.50 [")
    assert treatment[6] == "3.75"
    assert treatment[7].startswith("16.75 [")
    control = _row(arms, "control")
    assert control[1:4] == ["4", "4", "1"]
    assert control[4].startswith("25.00% [")
    assert control[5].startswith("20.00 [")
    assert control[6] == "0.00"
    assert control[7].startswith("8.00 [")

    effect = _section(report, "Effect of the promotion (treatment - control, per decision)")
    assert _row(effect, "conversion rate (points)")[1].startswith("+50.00 [")
    assert _row(effect, "relative conversion uplift")[1] == "+200.0%"
    assert _row(effect, "revenue per decision")[1].startswith("+27.50 [")
    assert _row(effect, "net margin per decision")[1].startswith("+8.75 [")
    assert _row(effect, "ROI of the promotion")[1] == "+2.33"

    offers = _section(report, "By offer")
    # cells: offer, dec. T, dec. C, conv. T, conv. C, conv. diff, net T, net C, net diff
    pct10 = _row(offers, "pct10")
    assert pct10[1:5] == ["2", "2", "50.00%", "50.00%"]
    assert pct10[5].startswith("+0.00 [")
    assert pct10[6:8] == ["17.00", "16.00"]  # (0.4 * 110 - 10) / 2 and 0.4 * 80 / 2
    assert _row(offers, "free_shipping")[1:5] == ["1", "1", "100.00%", "0.00%"]
    assert _row(offers, "none")[1:5] == ["1", "1", "100.00%", "0.00%"]

    segments = _section(report, "By segment")
    assert _row(segments, "0")[1:5] == ["2", "2", "50.00%", "50.00%"]
    assert _row(segments, "1")[1:5] == ["2", "2", "100.00%", "0.00%"]
    assert _row(_section(report, "By policy version"), "greedy-profit-v1")[1:3] == ["4", "4"]

    truth = _section(report, "Decision quality against ground truth (sim run run-new)")
    # cells: arm, decisions, chosen, policy, none, oracle, policy-none, regret, policy=oracle
    assert _row(truth, "treatment")[1:] == [
        "4", "1.38", "1.38", "1.00", "2.00", "0.38", "0.62", "50.00%"
    ]  # fmt: skip
    assert _row(truth, "control")[1:] == [
        "4", "1.00", "1.38", "1.00", "2.00", "0.38", "0.62", "50.00%"
    ]  # fmt: skip
    assert _row(truth, "all")[1:3] == ["8", "1.19"]

    letters = _section(report, "Dead letters by reason")
    assert _row(letters, "missing_field")[1] == "2"
    assert _row(letters, "invalid_json")[1] == "1"
    events = _section(report, "Events by type")
    assert _row(events, "view")[1:] == ["2", "2"]
    assert _row(events, "purchase")[1:] == ["1", "1"]

"""The migrations, views and report SQL on current ClickHouse (chdb), with a small dataset.

The same figures are pinned on 18.16 by tests/integration (test_clickhouse_schema.py,
test_report.py); here they must come out the same on the engine production runs. Every row is
written twice, in two inserts with merges stopped, so only FINAL keeps it from counting twice.

Timeline (minutes from TS; every decision has its outcome records):

    u1 treated  -1d buy 20 (pre-period)  0 d1 pct10 -> shown, clicked, buy 100 with 10 off
                                        +1 buy 100   +120 d3 free_shipping -> shown, no buy
    u2 control                           0 d2 (policy: pct10, sent none) -> buy 50
                                        +1 buy 50
    u3 treated  -30d buy 5 (too early)   0 d4 pct20 -> no buy
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from agents.sinks import Row, sink_batch, sinks
from promo import model_quality
from promo.clickhouse import apply_migrations, insert, read_migrations
from promo.off_policy import LOGGED_OFFERS_SQL, logged_offers, off_policy_estimates
from promo.report import _spend_section, _suppressions_section
from promo.report_figures import (
    PRE_PERIOD_DAYS,
    TRUTH_SQL,
    USERS_SQL,
    spend_per_day,
    suppressions_by_reason,
)
from schemas.codec import encode
from schemas.dead_letters import DeadLetter, RejectReason
from schemas.decisions import NO_OFFER, Decision
from schemas.events import ClickEvent, EventType
from schemas.outcomes import Outcome, OutcomeType
from schemas.suppressions import Suppression
from simulator.truth import TruthRow
from simulator.truth_store import RUN_COLUMNS, insert_run, insert_truth
from streams.catalogue import DEFAULT_CATALOGUE
from streams.off_policy import TargetPolicy, estimate_policy_value, modelled_reward, net_profit
from streams.sink_rows import (
    DEAD_LETTER_COLUMNS,
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    SUPPRESSION_COLUMNS,
    dead_letter_row,
    decision_row,
    event_row,
    outcome_row,
    suppression_row,
)
from tests.agents.conftest import agent_settings
from tests.current_clickhouse.conftest import ChdbClient, EngineError

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"
TS = 1_700_000_000_000
MINUTE = 60_000
DAY = 86_400_000
MARGIN = 0.5
SINK_TABLES = ("events", "decisions", "outcomes", "dead_letters")
VIEWS = (
    "v_decision_outcomes",
    "v_treatment_vs_control",
    "v_by_offer",
    "v_by_segment",
    "v_by_policy_version",
    "v_by_day",
    "v_user_outcomes",
    "v_users_treatment_vs_control",
)


def _decision(
    decision_id: str, user: str, minute: int, offer: str, propensity: float, segment: int
) -> Decision:
    control = user == "u2"
    return Decision(
        decision_id=decision_id,
        user_id=user,
        ts=TS + minute * MINUTE,
        trigger_event_id=f"ev-{decision_id}",
        trigger="view",
        segment=segment,
        control=control,
        chosen_offer=NO_OFFER if control else offer,
        policy_offer=offer,
        propensity=propensity,
        scores={NO_OFFER: 0.0, offer: 1.0},
        purchase_probs={NO_OFFER: 0.1, offer: 0.3},
        features=(0.5, 1.0),
        expected_order_value=80.0,
        offer_id=None if control else f"of-{decision_id}",
        expires_at=TS + 2 * DAY,
        policy_version="v1" if segment == 1 else "v2",
        model_version=1,
    )


DECISIONS = (
    _decision("d1", "u1", 0, "pct10", 0.8, segment=1),
    _decision("d2", "u2", 0, "pct10", 1.0, segment=1),
    _decision("d3", "u1", 120, "free_shipping", 0.5, segment=2),
    _decision("d4", "u3", 0, "pct20", 0.25, segment=2),
)


def _outcome(d: Decision, kind: OutcomeType, total: float = 0.0, discount: float = 0.0) -> Outcome:
    return Outcome(
        outcome_id=f"{d.decision_id}:{kind.value}",
        decision_id=d.decision_id,
        user_id=d.user_id,
        ts=d.ts + MINUTE,
        type=kind,
        source_event_id=f"e-{d.decision_id}",
        offer_code=d.chosen_offer,
        control=d.control,
        order_total=total,
        discount=discount,
    )


d1, d2, d3, d4 = DECISIONS
OUTCOMES = (
    _outcome(d1, OutcomeType.SHOWN),
    _outcome(d1, OutcomeType.CLICKED),
    _outcome(d1, OutcomeType.PURCHASE, 100.0, 10.0),
    _outcome(d1, OutcomeType.REDEEMED, 100.0, 10.0),  # repeats its purchase: counted once
    _outcome(d2, OutcomeType.PURCHASE, 50.0),
    _outcome(d3, OutcomeType.SHOWN),
    _outcome(d3, OutcomeType.NO_CONVERSION),
    _outcome(d4, OutcomeType.NO_CONVERSION),
)


def _purchase(event_id: str, user: str, ts: int, total: float) -> ClickEvent:
    return ClickEvent(
        event_id, user, ts, EventType.PURCHASE, order_id=f"o-{event_id}", order_total=total
    )


EVENTS = (
    ClickEvent("e-view", "u1", TS - MINUTE, EventType.VIEW, item_id="i", category="c", price=9.0),
    _purchase("e-pre", "u1", TS - DAY, 20.0),
    _purchase("e-buy", "u1", TS + MINUTE, 100.0),
    _purchase("e-buy2", "u2", TS + MINUTE, 50.0),
    _purchase("e-old", "u3", TS - 30 * DAY, 5.0),
)
LETTER = DeadLetter("clickstream", 0, 5, "u9", RejectReason.MISSING_FIELD, "ts", "e30=", "{}", TS)
# Expected profit of each action per user: u1's best is pct10, u2's and u3's is none.
TRUTH = [
    TruthRow(user, action, "persuadable", 0.1, 10.0, 1.0, profit)
    for user, profits in (("u1", (1.0, 5.0, 2.0, 0.0)), ("u2", (4.0, 3.0, 1.0, 0.0)))
    for action, profit in zip(("none", "pct10", "free_shipping", "pct20"), profits, strict=True)
] + [TruthRow("u3", action, "sure_thing", 0.5, 10.0, 0.0, 3.0) for action in ("none", "pct20")]


def _write_everything(client: ChdbClient) -> None:
    insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in DECISIONS])
    insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in OUTCOMES])
    insert(client, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(EVENTS)])
    insert(client, "dead_letters", DEAD_LETTER_COLUMNS, [dead_letter_row(LETTER)])
    insert_truth(client, "run-1", TRUTH)


@pytest.fixture(scope="module")
def loaded(current_clickhouse: ChdbClient) -> ChdbClient:
    """The migrated database with every record written twice, the copies left unmerged."""
    client = current_clickhouse
    assert apply_migrations(client, DDL_DIR) == [m.name for m in read_migrations(DDL_DIR)]
    for table in (*SINK_TABLES, "sim_truth"):
        client.execute(f"SYSTEM STOP MERGES {table}")
    _write_everything(client)
    _write_everything(client)  # a redelivery
    insert_run(
        client,
        {
            "run_id": "run-1",
            "started_at": TS // 1000,
            "sim_start_ms": TS - DAY,
            "sim_end_ms": TS + DAY,
            **dict.fromkeys(RUN_COLUMNS[4:], 3),  # counts the report does not read
        },
    )
    return client


def test_the_engine_is_current(current_clickhouse: ChdbClient) -> None:
    ((version,),) = current_clickhouse.execute("SELECT version()")
    assert int(version.split(".")[0]) >= 24, version


def test_migrations_create_every_view_once(loaded: ChdbClient) -> None:
    assert apply_migrations(loaded, DDL_DIR) == []
    tables = {name for (name,) in loaded.execute("SHOW TABLES")}
    assert set(VIEWS) <= tables


def test_the_copies_are_there_unmerged(loaded: ChdbClient) -> None:
    for table, distinct in (("decisions", 4), ("outcomes", 8), ("events", 5)):
        raw = loaded.execute(f"SELECT count() FROM {table}")
        final = loaded.execute(f"SELECT count() FROM {table} FINAL")
        assert (raw, final) == ([(2 * distinct,)], [(distinct,)]), table


def test_decision_outcomes(loaded: ChdbClient) -> None:
    rows = loaded.execute(
        "SELECT decision_id, arm, converted, redeemed, shown, clicked, purchases, revenue, "
        "discount FROM v_decision_outcomes ORDER BY decision_id"
    )
    assert rows == [
        ("d1", "treatment", 1, 1, 1, 1, 1, 100.0, 10.0),
        ("d2", "control", 1, 0, 0, 0, 1, 50.0, 0.0),
        ("d3", "treatment", 0, 0, 1, 0, 0, 0.0, 0.0),
        ("d4", "treatment", 0, 0, 0, 0, 0, 0.0, 0.0),
    ]


def test_treatment_vs_control(loaded: ChdbClient) -> None:
    rows = loaded.execute("SELECT * FROM v_treatment_vs_control ORDER BY arm")
    # No margins were sent: net profit's rate base is revenue + discount, its fixed part the
    # discount given (sum_rate_base, its square, sum_net_fixed, its square, their product).
    assert rows == [
        (
            *("control", 1, 1, 1, 1, 1.0, 0, 0, 0, 50.0, 2500.0, 0.0, 0.0, 0.0, 50.0, 0.0),
            *(50.0, 2500.0, 0.0, 0.0, 0.0),
        ),
        (
            "treatment",
            0,
            3,
            2,
            1,
            1 / 3,
            1,
            2,
            1,
            100.0,
            10_000.0,
            10.0,
            100.0,
            1000.0,
            100 / 3,
            10 / 3,
            *(110.0, 12_100.0, -10.0, 100.0, -1100.0),
        ),
    ]


@pytest.mark.parametrize(
    ("view", "key", "expected"),
    [
        (
            "v_by_offer",
            "offer",
            [
                ("free_shipping", "treatment", 1, 0),
                ("pct10", "control", 1, 1),
                ("pct10", "treatment", 1, 1),
                ("pct20", "treatment", 1, 0),
            ],
        ),
        (
            "v_by_segment",
            "segment",
            [(1, "control", 1, 1), (1, "treatment", 1, 1), (2, "treatment", 2, 0)],
        ),
        (
            "v_by_policy_version",
            "policy_version",
            [("v1", "control", 1, 1), ("v1", "treatment", 1, 1), ("v2", "treatment", 2, 0)],
        ),
    ],
)
def test_breakdowns(
    loaded: ChdbClient, view: str, key: str, expected: list[tuple[object, ...]]
) -> None:
    # By name: 18.16 reads `ORDER BY 1` as a constant, current ClickHouse as a position.
    rows = loaded.execute(
        f"SELECT {key}, arm, decisions, conversions FROM {view} ORDER BY {key}, arm"
    )
    assert rows == expected


def test_user_outcomes(loaded: ChdbClient) -> None:
    rows = loaded.execute(
        "SELECT user_id, arm, control, first_decision_ms, decisions, offers, purchases, "
        "converted, revenue, discount FROM v_user_outcomes ORDER BY user_id"
    )
    assert rows == [
        ("u1", "treatment", 0, TS, 2, 2, 1, 1, 100.0, 10.0),
        ("u2", "control", 1, TS, 1, 0, 1, 1, 50.0, 0.0),
        ("u3", "treatment", 0, TS, 1, 1, 0, 0, 0.0, 0.0),
    ]


def test_users_treatment_vs_control(loaded: ChdbClient) -> None:
    rows = loaded.execute("SELECT * FROM v_users_treatment_vs_control ORDER BY arm")
    assert rows == [
        (
            *("control", 1, 1, 1, 1.0, 0, 50.0, 2500.0, 0.0, 0.0, 0.0, 50.0, 0.0),
            *(50.0, 2500.0, 0.0, 0.0, 0.0),
        ),
        (
            *("treatment", 0, 2, 1, 0.5, 3, 100.0, 10_000.0, 10.0, 100.0, 1000.0, 50.0, 5.0),
            *(110.0, 12_100.0, -10.0, 100.0, -1100.0),
        ),
    ]


def test_the_report_per_user_query(loaded: ChdbClient) -> None:
    """The CUPED headline's query: a user's pre-period is the week before the first decision."""
    rows = loaded.execute(USERS_SQL, {"pre_period_ms": PRE_PERIOD_DAYS * DAY})
    # arm, converted, revenue, discount, rate_base, net_fixed, and in the pre-period:
    # purchases, rate base, fixed net profit (no margins sent: all at the rate)
    assert sorted(rows) == [
        ("control", 1, 50.0, 0.0, 50.0, 0.0, 0, 0.0, 0.0),
        ("treatment", 0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0),  # u3: 30 days before is too early
        ("treatment", 1, 100.0, 10.0, 110.0, -10.0, 1, 20.0, 0.0),  # u1
    ]


def test_logged_offers(loaded: ChdbClient) -> None:
    assert loaded.execute(LOGGED_OFFERS_SQL) == [("free_shipping",), ("pct10",), ("pct20",)]
    assert logged_offers(loaded) == ["free_shipping", "pct10", "pct20"]


def test_off_policy_estimates(loaded: ChdbClient) -> None:
    """OFF_POLICY_SQL against the numpy estimators of streams.off_policy, on the 4 decisions."""
    targets = [TargetPolicy.never(), TargetPolicy.always("pct10"), TargetPolicy.serving_choice()]
    estimates = off_policy_estimates(loaded, gross_margin=MARGIN, targets=targets)
    revenue = {"d1": (100.0, 10.0), "d2": (50.0, 0.0)}
    profit = [net_profit(*revenue.get(d.decision_id, (0.0, 0.0)), MARGIN) for d in DECISIONS]
    converted = [float(d.decision_id in revenue) for d in DECISIONS]

    def q(action: str, d: Decision) -> tuple[float, float]:
        return modelled_reward(
            action,
            d.purchase_probs,
            d.expected_order_value,
            catalogue=DEFAULT_CATALOGUE,
            gross_margin=MARGIN,
        )

    assert [e.target for e in estimates] == targets
    for e in estimates:
        actions = [e.target.action_for(d.policy_offer) for d in DECISIONS]
        for m, (got, rewards) in enumerate(((e.profit, profit), (e.conversion, converted))):
            want = estimate_policy_value(
                rewards,
                [e.target.propensity_for(d.propensity) for d in DECISIONS],
                [d.chosen_offer for d in DECISIONS],
                actions,
                [q(d.chosen_offer, d)[m] for d in DECISIONS],
                [q(a, d)[m] for a, d in zip(actions, DECISIONS, strict=True)],
            )
            assert (got.n, got.matched, got.unsupported) == (want.n, want.matched, want.unsupported)
            for name in ("ips", "snips", "dr"):
                assert math.isclose(getattr(got, name).value, getattr(want, name).value), name
    never = estimates[0].profit
    assert (never.n, never.matched, never.ips.value) == (4, 1, net_profit(50.0, 0.0, MARGIN) / 4)


def test_the_report_ground_truth_query(loaded: ChdbClient) -> None:
    rows = loaded.execute(TRUTH_SQL, {"run_id": "run-1", "start_ms": TS - DAY, "end_ms": TS + DAY})
    by_arm = {r[0]: r[1:] for r in rows}
    # arm: decisions, mean chosen, policy, none and oracle profit, share where policy is best.
    assert by_arm == {
        "control": (1, 4.0, 3.0, 4.0, 4.0, 0.0),  # u2 was sent none, policy would send pct10
        "treatment": pytest.approx((3, 10 / 3, 10 / 3, 5 / 3, 13 / 3, 2 / 3)),  # d1, d3, d4
    }


def test_the_report_spend_and_suppression_sections(loaded: ChdbClient) -> None:
    withheld = [
        Suppression("su-" + "1" * 24, "u1", TS + 5 * MINUTE, "s1", "add_to_cart", "cooldown", "v1"),
        Suppression(
            "su-" + "2" * 24, "u3", TS, "s2", "cart_return", "budget", "v1", "de-1", "pct20", 2.5
        ),
    ]
    for _ in range(2):  # stored once
        insert(loaded, "suppressions", SUPPRESSION_COLUMNS, [suppression_row(s) for s in withheld])
    spend = {
        line.split()[0]: line.split()
        for line in _spend_section(spend_per_day(loaded), 100.0).splitlines()
    }
    assert spend["2023-11-14"] == ["2023-11-14", "2", "10.00", "1", "2.50"]  # d1, d4
    assert spend["2023-11-15"] == ["2023-11-15", "1", "0.00", "0", "0.00"]  # d3 at 00:13
    reasons = [
        line.split()
        for line in _suppressions_section(suppressions_by_reason(loaded)).splitlines()[-2:]
    ]
    assert reasons == [["budget", "1", "1", "2.50"], ["cooldown", "1", "1", "0.00"]]


def test_the_report_model_quality_query(loaded: ChdbClient) -> None:
    # d1 (P 0.3, bought), d2 (control, P(buy | none) 0.1, bought), d4 (0.3, did not) on the
    # first day; d3 (0.3, did not) after midnight. Every row was written twice. By the store's
    # clock (d3, the latest decision) every window is open; a day after them all are closed.
    assert model_quality.read_rows(loaded) == []
    rows = model_quality.read_rows(loaded, as_of_ms=TS + 3 * DAY)
    first, second = model_quality.quality_by_day(rows)
    assert (first.decisions, first.buyers, second.decisions, second.buyers) == (3, 2, 1, 0)
    assert first.log_loss == pytest.approx(-(math.log(0.3) + math.log(0.1) + math.log(0.7)) / 3)
    assert first.auc == pytest.approx(0.25) and math.isnan(second.auc)
    assert [(b.low, b.decisions) for b in model_quality.calibration(rows)] == [(0.1, 1), (0.3, 3)]
    # The offers apart: d1 (bought) and d4 (did not); d3 the next day.
    assert (first.offers, first.offers_bought.value, second.offers) == (2, 0.5, 1)


class _Committer:
    """The one consumer call ``sink_batch`` makes after writing."""

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        pass


async def test_dead_letters_from_ten_years_of_clocks_are_written(loaded: ChdbClient) -> None:
    """One insert of rows from 120 months is refused by current ClickHouse (more than 100
    partitions); the sinks split a batch by 30-day spans, and every row lands."""
    topic = "promo-dead-letters"
    letters = [
        replace(LETTER, offset=1000 + i, message_ts=TS - i * 31 * DAY, detail=f"m{i}")
        for i in range(120)
    ]
    with pytest.raises(EngineError, match="partitions"):
        loaded.execute(
            f"INSERT INTO dead_letters ({', '.join(DEAD_LETTER_COLUMNS)}) VALUES",
            [dead_letter_row(letter) for letter in letters],
        )
    sink = replace(
        next(s for s in sinks(agent_settings()) if s.table == "dead_letters"), topic=topic
    )
    tp = TopicPartition(topic, 0)
    batch = {
        tp: [
            ConsumerRecord(topic, 0, i, 0, 0, b"k", encode(letter), None, 0, 0, ())
            for i, letter in enumerate(letters)
        ]
    }

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        insert(loaded, table, columns, rows)

    assert await sink_batch(_Committer(), batch, {topic: sink}, write) == 120
    stored = loaded.execute("SELECT count() FROM dead_letters WHERE detail LIKE 'm%%'")
    assert stored == [(120,)]

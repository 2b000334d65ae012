"""Records -> ClickHouse rows: every field lands in its column, and nothing is lost."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from schemas.dead_letters import DeadLetter, RejectReason
from schemas.decisions import Decision
from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import Outcome, OutcomeType
from streams.sink_rows import (
    DEAD_LETTER_COLUMNS,
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    SUPPRESSION_COLUMNS,
    UNKNOWN_MARGIN,
    datetime_seconds,
    dead_letter_row,
    decision_row,
    event_row,
    outcome_row,
)

DDL = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse" / "0001_tables.sql"
TS = 1_700_000_000_123


def ddl_columns(table: str) -> tuple[str, ...]:
    """Column names of ``table`` as the DDL files create and then alter it (no server)."""
    text = "\n".join(f.read_text() for f in sorted(DDL.parent.glob("*.sql")))
    match = re.search(rf"CREATE TABLE IF NOT EXISTS {table}\s*\((.*?)\n\)\s*ENGINE", text, re.S)
    assert match, table
    names = []
    for line in match[1].splitlines():
        line = line.strip()
        if line and not line.startswith("--"):
            names.append(line.split()[0].strip("`"))
    for later in sorted(DDL.parent.glob("*.sql")):
        names += re.findall(rf"ALTER TABLE {table} ADD COLUMN (\w+)", later.read_text())
    return tuple(names)


def test_column_tuples_match_the_ddl() -> None:
    assert ddl_columns("events") == EVENT_COLUMNS
    assert ddl_columns("decisions") == DECISION_COLUMNS
    assert ddl_columns("outcomes") == OUTCOME_COLUMNS
    assert ddl_columns("dead_letters") == DEAD_LETTER_COLUMNS
    assert ddl_columns("suppressions") == SUPPRESSION_COLUMNS


def test_datetime_seconds_truncates_and_clamps() -> None:
    assert datetime_seconds(TS) == 1_700_000_000
    assert datetime_seconds(999) == 0
    assert datetime_seconds(-1) == 0  # Kafka's "no timestamp"
    assert datetime_seconds(32_503_680_000_000) == 2**32 - 1  # year 3000 passes validation


def test_view_event_keeps_null_price_apart_from_a_free_item() -> None:
    free = dict(zip(EVENT_COLUMNS, event_row(_view(price=0.0), 0, 0), strict=True))
    assert free["price"] == 0.0
    search = ClickEvent("e2", "u1", TS, EventType.SEARCH, query="red shoes")
    row = dict(zip(EVENT_COLUMNS, event_row(search, partition=5, offset=77), strict=True))
    assert row["price"] is None and row["order_total"] is None
    assert row["item_id"] == row["category"] == row["session_id"] == ""
    assert row["quantity"] == 0
    assert row["query"] == "red shoes"
    assert (row["type"], row["ts"], row["ts_ms"]) == ("search", 1_700_000_000, TS)
    assert (row["kafka_partition"], row["kafka_offset"]) == (5, 77)
    assert row["item_ids"] == row["item_prices"] == ()


def test_purchase_items_become_parallel_arrays() -> None:
    purchase = ClickEvent(
        "e3",
        "u1",
        TS,
        EventType.PURCHASE,
        order_id="o1",
        order_total=25.0,
        items=(LineItem("i1", 10.0, 2, "shoes"), LineItem("i2", 5.0)),
        coupon_code="P10-X",
        offer_id="of-1",
    )
    row = dict(zip(EVENT_COLUMNS, event_row(purchase, 0, 0), strict=True))
    assert row["item_ids"] == ["i1", "i2"]
    assert row["item_prices"] == [10.0, 5.0]
    assert row["item_quantities"] == [2, 1]
    assert row["item_categories"] == ["shoes", ""]
    assert (row["order_total"], row["coupon_code"], row["offer_id"]) == (25.0, "P10-X", "of-1")
    assert row["item_margins"] == [UNKNOWN_MARGIN, UNKNOWN_MARGIN]
    assert row["order_margin"] == UNKNOWN_MARGIN


def test_an_order_whose_lines_all_carry_margins_has_its_margin_in_the_row() -> None:
    lines = (LineItem("i1", 10.0, 2, margin=4.0), LineItem("i2", 5.0, margin=0.0))
    purchase = ClickEvent(
        "e3", "u1", TS, EventType.PURCHASE, order_id="o1", order_total=25.0, items=lines
    )
    row = dict(zip(EVENT_COLUMNS, event_row(purchase, 0, 0), strict=True))
    assert row["item_margins"] == [4.0, 0.0]  # a margin of 0 is known, not missing
    assert row["order_margin"] == 8.0  # 2 x 4 + 1 x 0
    outcome = Outcome("o1", "de-1", "u1", TS, OutcomeType.PURCHASE, "e3", "none", False, 25.0)
    for margin, stored in ((None, UNKNOWN_MARGIN), (8.0, 8.0)):
        with_margin = replace(outcome, order_margin=margin)
        row = dict(zip(OUTCOME_COLUMNS, outcome_row(with_margin), strict=True))
        assert row["order_margin"] == stored


def test_decision_row_aligns_scores_and_probabilities() -> None:
    decision = _decision(
        scores={"none": 0.5, "pct10": 3.2, "pct20": 1.0},
        purchase_probs={"pct20": 0.3, "none": 0.1, "pct10": 0.2},
    )
    row = dict(zip(DECISION_COLUMNS, decision_row(decision), strict=True))
    assert row["score_offers"] == ["none", "pct10", "pct20"]
    assert row["scores"] == [0.5, 3.2, 1.0]
    assert row["purchase_probs"] == [0.1, 0.2, 0.3]
    assert row["offer_id"] == ""
    assert row["control"] is True
    assert row["expires_at"] == (TS + 172_800_000) // 1000


def test_decision_row_keeps_actions_only_one_dict_has() -> None:
    decision = _decision(scores={"none": 0.5}, purchase_probs={"pct10": 0.2})
    row = dict(zip(DECISION_COLUMNS, decision_row(decision), strict=True))
    assert row["score_offers"] == ["none", "pct10"]
    assert row["scores"][0] == 0.5 and math.isnan(row["scores"][1])
    assert math.isnan(row["purchase_probs"][0]) and row["purchase_probs"][1] == 0.2


def test_outcome_and_dead_letter_rows() -> None:
    outcome = Outcome(
        "o1", "de-1", "u1", TS, OutcomeType.REDEEMED, "e9", "pct10", False, 90.0, 10.0
    )
    row = dict(zip(OUTCOME_COLUMNS, outcome_row(outcome), strict=True))
    assert (row["type"], row["ts"], row["order_total"], row["discount"]) == (
        "redeemed",
        1_700_000_000,
        90.0,
        10.0,
    )
    letter = DeadLetter(
        "clickstream", 3, 12, None, RejectReason.INVALID_JSON, "x", "/w==", None, -1
    )
    row = dict(zip(DEAD_LETTER_COLUMNS, dead_letter_row(letter), strict=True))
    assert row["key"] is None and row["raw_text"] is None
    assert (row["reason"], row["message_ts"], row["message_ts_ms"]) == ("invalid_json", 0, -1)


ids = st.text(min_size=1, max_size=12)
optional_text = st.none() | ids
money = st.floats(min_value=0, max_value=1e6, allow_nan=False)
line_items = st.builds(
    LineItem,
    ids,
    money,
    st.integers(1, 10_000),
    st.none() | st.text(min_size=1, max_size=8),
    st.none() | money,
)
events = st.builds(
    ClickEvent,
    event_id=ids,
    user_id=ids,
    ts=st.integers(946_684_800_000, 32_503_680_000_000),
    type=st.sampled_from(EventType),
    session_id=optional_text,
    item_id=optional_text,
    category=optional_text,
    price=st.none() | money,
    quantity=st.none() | st.integers(1, 10_000),
    query=optional_text,
    order_id=optional_text,
    order_total=st.none() | money,
    items=st.lists(line_items, max_size=4).map(tuple),
    coupon_code=optional_text,
    offer_id=optional_text,
    margin=st.none() | money,
)


def _margin(stored: float) -> float | None:
    return None if stored == UNKNOWN_MARGIN else stored


@given(events, st.integers(0, 1023), st.integers(0, 2**63))
def test_event_row_loses_nothing(event: ClickEvent, partition: int, offset: int) -> None:
    """Rebuilding the event from its row gives it back (absent text and '' coincide)."""
    row = dict(zip(EVENT_COLUMNS, event_row(event, partition, offset), strict=True))
    rebuilt = ClickEvent(
        event_id=row["event_id"],
        user_id=row["user_id"],
        ts=row["ts_ms"],
        type=EventType(row["type"]),
        session_id=row["session_id"] or None,
        item_id=row["item_id"] or None,
        category=row["category"] or None,
        price=row["price"],
        quantity=row["quantity"] or None,
        query=row["query"] or None,
        order_id=row["order_id"] or None,
        order_total=row["order_total"],
        items=tuple(
            LineItem(i, p, q, c or None, _margin(m))
            for i, p, q, c, m in zip(
                row["item_ids"],
                row["item_prices"],
                row["item_quantities"],
                row["item_categories"],
                row["item_margins"],
                strict=True,
            )
        ),
        coupon_code=row["coupon_code"] or None,
        offer_id=row["offer_id"] or None,
        margin=_margin(row["margin"]),
    )

    def blank(value: str | None) -> str | None:
        return value or None

    expected = ClickEvent(
        event.event_id,
        event.user_id,
        event.ts,
        event.type,
        blank(event.session_id),
        blank(event.item_id),
        blank(event.category),
        event.price,
        event.quantity,
        blank(event.query),
        blank(event.order_id),
        event.order_total,
        tuple(
            LineItem(i.item_id, i.price, i.quantity, blank(i.category), i.margin)
            for i in event.items
        ),
        blank(event.coupon_code),
        blank(event.offer_id),
        event.margin,
    )
    assert rebuilt == expected
    assert _margin(row["order_margin"]) == event.order_margin
    assert row["ts"] == min(event.ts // 1000, 2**32 - 1)
    assert (row["kafka_partition"], row["kafka_offset"]) == (partition, offset)


def _view(price: float) -> ClickEvent:
    return ClickEvent("e1", "u1", TS, EventType.VIEW, item_id="i1", category="c", price=price)


def _decision(scores: dict[str, float], purchase_probs: dict[str, float]) -> Decision:
    return Decision(
        decision_id="de-" + "0" * 24,
        user_id="u1",
        ts=TS,
        trigger_event_id="e1",
        trigger="view",
        segment=3,
        control=True,
        chosen_offer="none",
        policy_offer="pct10",
        propensity=1.0,
        scores=scores,
        purchase_probs=purchase_probs,
        features=(1.0, 2.0),
        expected_order_value=80.0,
        offer_id=None,
        expires_at=TS + 172_800_000,
        policy_version="greedy-profit-v1",
        model_version=4,
    )

"""Records -> ClickHouse rows: the column order of each table and one cheap mapping per record.

The DDL is ``deploy/clickhouse/0001_tables.sql``; a test checks that these column tuples match
the tables. Rows are plain tuples in column order, for ``clickhouse_driver.Client.execute``.

Times: every ``DateTime`` column gets integer epoch *seconds*, next to an integer milliseconds
column (``ts_ms``). clickhouse-driver writes an ``int`` as-is, while a ``datetime`` costs a
timezone conversion per value, and an int cannot be shifted by the client's or the server's
timezone. Seconds are clamped to the ``DateTime`` range (1970 to 2106): one absurd Kafka
timestamp (``-1`` means "none") must not make a whole batch fail.

>>> from schemas.events import ClickEvent, EventType
>>> row = event_row(ClickEvent("e1", "u1", 1_700_000_000_123, EventType.SEARCH, query="shoes"),
...                 partition=3, offset=42)
>>> columns = dict(zip(EVENT_COLUMNS, row))
>>> columns["ts"], columns["ts_ms"]
(1700000000, 1700000000123)
>>> columns["price"] is None, columns["kafka_partition"], columns["kafka_offset"]
(True, 3, 42)
>>> columns["margin"], columns["order_margin"]  # not sent: unknown
(-1.0, -1.0)
"""

from __future__ import annotations

from typing import Any

from schemas.dead_letters import DeadLetter
from schemas.decisions import Decision
from schemas.events import ClickEvent
from schemas.outcomes import Outcome
from schemas.suppressions import Suppression

#: A row as clickhouse-driver takes it: values in the table's column order.
Row = tuple[Any, ...]

_MAX_DATETIME = 2**32 - 1  # ClickHouse DateTime is UInt32 seconds
_NAN = float("nan")
#: A margin the platform did not send (or an order with a line without one). Margins are
#: never negative, and ``margin >= 0`` reads the same on ClickHouse 18.16 and current, where
#: comparisons with NULL do not (migration 0009).
UNKNOWN_MARGIN = -1.0


def margin_or_unknown(margin: float | None) -> float:
    """A margin as its column holds it.

    >>> margin_or_unknown(None), margin_or_unknown(0.0)
    (-1.0, 0.0)
    """
    return UNKNOWN_MARGIN if margin is None else margin


EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "ts",
    "ts_ms",
    "type",
    "session_id",
    "item_id",
    "category",
    "price",
    "quantity",
    "query",
    "order_id",
    "order_total",
    "item_ids",
    "item_prices",
    "item_quantities",
    "item_categories",
    "coupon_code",
    "offer_id",
    "kafka_partition",
    "kafka_offset",
    "margin",
    "item_margins",
    "order_margin",
    "user_group",  # the event's `group`, '' when not sent (GROUP is an SQL keyword)
)

DECISION_COLUMNS = (
    "decision_id",
    "user_id",
    "ts",
    "ts_ms",
    "trigger_event_id",
    "trigger",
    "segment",
    "control",
    "chosen_offer",
    "policy_offer",
    "propensity",
    "score_offers",
    "scores",
    "purchase_probs",
    "features",
    "expected_order_value",
    "offer_id",
    "expires_at",
    "policy_version",
    "model_version",
    "shadow_policy",
    "shadow_offer",
    "shadow_propensity",
    "segment_name",
    "rule_segment",
    "user_group",  # the decision's `group`
    "abuse_score",
    "target_category",
    "interest_category",
)

OUTCOME_COLUMNS = (
    "outcome_id",
    "decision_id",
    "user_id",
    "ts",
    "ts_ms",
    "type",
    "source_event_id",
    "offer_code",
    "control",
    "order_total",
    "discount",
    "order_margin",
)

SUPPRESSION_COLUMNS = (
    "suppression_id",
    "user_id",
    "ts",
    "ts_ms",
    "trigger_event_id",
    "trigger",
    "reason",
    "policy_version",
    "decision_id",
    "policy_offer",
    "expected_cost",
)

DEAD_LETTER_COLUMNS = (
    "source_topic",
    "partition",
    "offset",
    "key",
    "reason",
    "detail",
    "raw_b64",
    "raw_text",
    "message_ts",
    "message_ts_ms",
    "schema_version",
    "raw_size",
    "raw_sha256",
    "truncated",
)


def datetime_seconds(ms: int) -> int:
    """Epoch milliseconds -> the seconds a ``DateTime`` column can hold (clamped).

    >>> datetime_seconds(1_700_000_000_999), datetime_seconds(-1), datetime_seconds(2**60)
    (1700000000, 0, 4294967295)
    """
    seconds = ms // 1000
    if 0 <= seconds <= _MAX_DATETIME:
        return seconds
    return 0 if seconds < 0 else _MAX_DATETIME


def event_row(event: ClickEvent, partition: int, offset: int) -> Row:
    """One ``events`` row; absent text fields are ``''``, absent quantities ``0``.

    ``price`` and ``order_total`` stay ``NULL`` when absent: a free item (0) is not a missing
    price. Line items become five parallel arrays. Margins absent are ``-1``
    (``UNKNOWN_MARGIN``); ``order_margin`` is the purchase's, known when every line has one.
    """
    items = event.items
    if items:
        item_ids: Any = [i.item_id for i in items]
        item_prices: Any = [i.price for i in items]
        item_quantities: Any = [i.quantity for i in items]
        item_categories: Any = [i.category or "" for i in items]
        item_margins: Any = [margin_or_unknown(i.margin) for i in items]
    else:  # the common case: no allocation per event
        item_ids = item_prices = item_quantities = item_categories = item_margins = ()
    return (
        event.event_id,
        event.user_id,
        datetime_seconds(event.ts),
        event.ts,
        event.type.value,
        event.session_id or "",
        event.item_id or "",
        event.category or "",
        event.price,
        event.quantity or 0,
        event.query or "",
        event.order_id or "",
        event.order_total,
        item_ids,
        item_prices,
        item_quantities,
        item_categories,
        event.coupon_code or "",
        event.offer_id or "",
        partition,
        offset,
        margin_or_unknown(event.margin),
        item_margins,
        margin_or_unknown(event.order_margin),
        event.group or "",
    )


def decision_row(decision: Decision) -> Row:
    """One ``decisions`` row; ``scores`` and ``purchase_probs`` become arrays over ``score_offers``.

    Both dicts normally have the same actions; an action only one of them has gets ``nan`` in
    the other array, so no value is lost and the arrays stay parallel.

    >>> from schemas.decisions import Decision
    >>> d = Decision("de-" + "0" * 24, "u1", 1_700_000_000_000, "e1", "view", 2, False, "pct10",
    ...              "pct10", 0.92, {"none": 0.5, "pct10": 3.2}, {"none": 0.1, "pct10": 0.2},
    ...              (1.0, 0.0), 80.0, "of-1", 1_700_172_800_000, "greedy-profit-v1", 7)
    >>> row = dict(zip(DECISION_COLUMNS, decision_row(d)))
    >>> row["score_offers"], row["scores"], row["purchase_probs"], row["expires_at"]
    (['none', 'pct10'], [0.5, 3.2], [0.1, 0.2], 1700172800)
    """
    scores = decision.scores
    probs = decision.purchase_probs
    offers = list(scores)
    if probs.keys() == scores.keys():
        prob_values = [probs[a] for a in offers]
    else:
        offers += [a for a in probs if a not in scores]
        prob_values = [probs.get(a, _NAN) for a in offers]
    return (
        decision.decision_id,
        decision.user_id,
        datetime_seconds(decision.ts),
        decision.ts,
        decision.trigger_event_id,
        decision.trigger,
        decision.segment,
        decision.control,
        decision.chosen_offer,
        decision.policy_offer,
        decision.propensity,
        offers,
        [scores.get(a, _NAN) for a in offers],
        prob_values,
        decision.features,
        decision.expected_order_value,
        decision.offer_id or "",
        datetime_seconds(decision.expires_at),
        decision.policy_version,
        decision.model_version,
        decision.shadow_policy,
        decision.shadow_offer,
        decision.shadow_propensity,
        decision.segment_name,
        decision.rule_segment,
        decision.group,
        decision.abuse_score,
        decision.target_category,
        decision.interest_category,
    )


def outcome_row(outcome: Outcome) -> Row:
    """One ``outcomes`` row."""
    return (
        outcome.outcome_id,
        outcome.decision_id,
        outcome.user_id,
        datetime_seconds(outcome.ts),
        outcome.ts,
        outcome.type.value,
        outcome.source_event_id,
        outcome.offer_code,
        outcome.control,
        outcome.order_total,
        outcome.discount,
        margin_or_unknown(outcome.order_margin),
    )


def suppression_row(suppression: Suppression) -> Row:
    """One ``suppressions`` row."""
    s = suppression
    return (
        s.suppression_id,
        s.user_id,
        datetime_seconds(s.ts),
        s.ts,
        s.trigger_event_id,
        s.trigger,
        s.reason,
        s.policy_version,
        s.decision_id,
        s.policy_offer,
        s.expected_cost,
    )


def dead_letter_row(letter: DeadLetter) -> Row:
    """One ``dead_letters`` row; ``key`` and ``raw_text`` keep ``NULL`` (no key, not UTF-8)."""
    return (
        letter.source_topic,
        letter.partition,
        letter.offset,
        letter.key,
        letter.reason.value,
        letter.detail,
        letter.raw_b64,
        letter.raw_text,
        datetime_seconds(letter.message_ts),
        letter.message_ts,
        letter.schema_version,
        letter.raw_size,
        letter.raw_sha256,
        letter.truncated,
    )

"""The analyst SQL guide (docs/analyst-sql.md) as test input: its queries and a small dataset.

The guide is the one source of its queries: tests read every ```sql block from it and run
them on current ClickHouse (tests/current_clickhouse) and on the 18.16 server
(tests/integration), against the migrated schema holding ``write_sample``'s rows.

>>> text = "# T\\n### Q1. How many?\\nWhy.\\n```sql\\nSELECT 1;\\n```\\n```sh\\nls\\n```\\n"
>>> guide_queries(text)
[GuideQuery(question='Q1. How many?', sql='SELECT 1')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from promo.bundle_rules import RULE_COLUMNS, RUN_COLUMNS
from promo.clickhouse import insert
from schemas.dead_letters import DeadLetter, RejectReason
from schemas.decisions import NO_OFFER, Decision
from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import Outcome, OutcomeType
from schemas.suppressions import Suppression
from streams.off_policy import net_profit
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

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "analyst-sql.md"


@dataclass(frozen=True)
class GuideQuery:
    """One ```sql block of the guide, under the heading it answers; no trailing ``;``."""

    question: str
    sql: str


def guide_queries(text: str) -> list[GuideQuery]:
    """Every ```sql block of a Markdown text, in order, with the last heading above it."""
    queries: list[GuideQuery] = []
    question = ""
    block: list[str] | None = None  # the lines of the open ```sql block
    for line in text.splitlines():
        if block is not None:
            if line.strip() == "```":
                sql = "\n".join(block).strip().removesuffix(";").strip()
                queries.append(GuideQuery(question, sql))
                block = None
            else:
                block.append(line)
        elif line.strip() == "```sql":
            block = []
        elif line.startswith("#"):
            question = line.lstrip("#").strip()
    if block is not None:
        raise ValueError(f"an unclosed ```sql block under {question!r}")
    return queries


def read_guide() -> list[GuideQuery]:
    return guide_queries(GUIDE.read_text(encoding="utf-8"))


# --- a small shop: something for every question to return ---------------------------------

TS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC, a Tuesday
MINUTE = 60_000
DAY = 86_400_000

# (decision, user, days after TS, offer (control: the policy's), propensity, segment,
#  policy version, model version, what followed: outcome kinds, order total, discount)
_DECISIONS: list[tuple[str, str, int, str, float, int, str, int, tuple[str, ...], float, float]] = [
    ("d1", "t1", 0, "pct10", 1.0, 0, "v1", 1, ("shown", "clicked", "redeemed"), 100.0, 10.0),
    ("d2", "t2", 0, "free_shipping", 0.5, 1, "v1", 1, ("shown",), 0.0, 0.0),
    ("d3", "t3", 1, "pct10", 1.0, 0, "v2", 2, ("shown",), 60.0, 0.0),
    ("d4", "t4", 1, NO_OFFER, 1.0, 1, "v2", 2, (), 40.0, 0.0),
    ("d5", "t1", 8, "pct20", 0.25, 0, "v2", 2, ("shown", "clicked", "redeemed"), 80.0, 16.0),
    ("d10", "t5", 1, "pct20", 0.5, 1, "v2", 2, ("shown",), 200.0, 0.0),
    ("d6", "c1", 0, "pct10", 1.0, 0, "v1", 1, (), 70.0, 0.0),
    ("d7", "c2", 1, "free_shipping", 1.0, 1, "v2", 2, (), 0.0, 0.0),
    ("d8", "c3", 1, "pct10", 1.0, 0, "v2", 2, (), 30.0, 0.0),
    ("d9", "c4", 8, "pct20", 1.0, 0, "v2", 2, (), 0.0, 0.0),
]


#: Orders whose every line carried a margin (the platform's, per unit, before the coupon):
#: their gross margin is their own; the others' is the rate on revenue + discount.
ORDER_MARGINS = {"d1": 66.0, "d5": 12.0, "d6": 21.0}


def user_net_profits(rate: float) -> dict[str, tuple[bool, float]]:
    """Each user's (control, net profit) from the sample's own figures, order by order by the
    definition (``streams.off_policy.net_profit``): what the views must add up to."""
    users: dict[str, tuple[bool, float]] = {}
    for name, user, *_, total, discount in _DECISIONS:
        _, net = users.get(user, (False, 0.0))
        if total:
            net += net_profit(total, discount, rate, order_margin=ORDER_MARGINS.get(name))
        users[user] = (user.startswith("c"), net)
    return users


def _decisions() -> list[Decision]:
    decisions = []
    for name, user, days, offer, propensity, segment, policy, model, *_ in _DECISIONS:
        control = user.startswith("c")
        sent = not control and offer != NO_OFFER
        ts = TS + days * DAY
        decisions.append(
            Decision(
                decision_id=f"de-{name}",
                user_id=user,
                ts=ts,
                trigger_event_id=f"ev-view-{name}",
                trigger="view",
                segment=segment,
                control=control,
                chosen_offer=NO_OFFER if control else offer,
                policy_offer=offer,
                propensity=propensity,
                scores={NO_OFFER: 0.0, offer: 1.0},
                purchase_probs={NO_OFFER: 0.1, offer: 0.2},
                features=(0.5, 1.0),
                expected_order_value=60.0,
                offer_id=f"of-{name}" if sent else None,
                expires_at=ts + 2 * DAY,
                policy_version=policy,
                model_version=model,
                shadow_policy="candidate",
                shadow_offer=NO_OFFER if segment else offer,
                shadow_propensity=1.0,
            )
        )
    return decisions


def _outcomes_and_events() -> tuple[list[Outcome], list[ClickEvent]]:
    outcomes, events = [], []
    for d, (name, *_, follow, total, discount) in zip(_decisions(), _DECISIONS, strict=True):
        at = d.ts + 10 * MINUTE
        events.append(ClickEvent(d.trigger_event_id, d.user_id, d.ts, EventType.VIEW, item_id="i"))
        kinds = [OutcomeType(k) for k in follow if k != "redeemed"]
        margin = ORDER_MARGINS.get(name)
        if total:
            kinds.append(OutcomeType.PURCHASE)
            # One line, its unit price before the coupon, with the order's margin if known.
            line = LineItem("i", total + discount, 1, margin=margin)
            events.append(
                ClickEvent(
                    f"ev-buy-{name}",
                    d.user_id,
                    at,
                    EventType.PURCHASE,
                    order_id=f"o-{name}",
                    order_total=total,
                    items=(line,),
                )
            )
            if "redeemed" in follow:
                kinds.append(OutcomeType.REDEEMED)
        else:
            kinds.append(OutcomeType.NO_CONVERSION)
        for kind in kinds:
            money = kind in (OutcomeType.PURCHASE, OutcomeType.REDEEMED)
            outcomes.append(
                Outcome(
                    outcome_id=f"{d.decision_id}:{kind.value}:ev-{name}",
                    decision_id=d.decision_id,
                    user_id=d.user_id,
                    ts=at,
                    type=kind,
                    source_event_id=f"ev-{kind.value}-{name}",
                    offer_code=d.chosen_offer,
                    control=d.control,
                    order_total=total if money else 0.0,
                    discount=discount if money else 0.0,
                    order_margin=margin if money else None,
                )
            )
    return outcomes, events


def _suppressions() -> list[Suppression]:
    return [
        Suppression("su-1", "t1", TS + 30 * MINUTE, "ev-cart-1", "add_to_cart", "cooldown", "v1"),
        Suppression("su-2", "c1", TS, "ev-view-d6", "view", "control", "v1", "de-d6", "pct10", 3.0),
        Suppression(
            "su-3", "t2", TS + DAY, "ev-cart-2", "add_to_cart", "budget", "v2", "de-x", "pct20", 4.0
        ),
        Suppression("su-4", "t1", TS + 9 * DAY, "ev-view-9", "view", "weekly_cap", "v2"),
    ]


def _dead_letters() -> list[DeadLetter]:
    return [
        DeadLetter("clickstream", 0, 7, "t1", RejectReason.INVALID_JSON, "line 1", "e30=", "{", TS),
        DeadLetter("clickstream", 1, 3, None, RejectReason.MISSING_FIELD, "ts", "e30=", "{}", TS),
    ]


def write_sample(client: Any) -> None:
    """The sample shop, written twice (a redelivery): only FINAL keeps a row from counting
    twice before ClickHouse merges the copies."""
    outcomes, events = _outcomes_and_events()
    for _ in range(2):
        insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in _decisions()])
        insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in outcomes])
        rows = [event_row(e, 0, offset) for offset, e in enumerate(events)]
        insert(client, "events", EVENT_COLUMNS, rows)
        rows = [suppression_row(s) for s in _suppressions()]
        insert(client, "suppressions", SUPPRESSION_COLUMNS, rows)
        rows = [dead_letter_row(letter) for letter in _dead_letters()]
        insert(client, "dead_letters", DEAD_LETTER_COLUMNS, rows)
    # Bundle rules as `promo rules` stores them (the sample's orders name no categories).
    insert(client, "bundle_rule_runs", RUN_COLUMNS, [(7, datetime(2023, 11, 15), 0, 9, 40, 2)])
    rules = [
        (7, "pasta", "sauce", 12, 15, 14, 0.3, 0.8, 1.52),
        (7, "pasta", "soap", 5, 15, 20, 0.125, 0.33, 0.67),
    ]
    insert(client, "bundle_rules", RULE_COLUMNS, rules)

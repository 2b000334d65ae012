"""Bundle rules through ClickHouse, as test input for both engines: purchases whose lines name
categories, the rules ``promo rules`` computes from them in SQL, and the same rules counted in
Python (``streams.bundles.count_rules``, what ``promo evaluate`` decides with).
tests/current_clickhouse and tests/integration (18.16) run the same check.
"""

from __future__ import annotations

from typing import Any

import pytest

from promo.bundle_rules import DAY_MS, compute_rules
from promo.clickhouse import insert, query
from schemas.events import ClickEvent, EventType, LineItem
from streams.bundles import count_rules
from streams.sink_rows import EVENT_COLUMNS, event_row

TS = 1_700_000_000_000
#: (categories of an order's lines) x how many such orders, on consecutive minutes.
ORDERS = (
    (("pasta", "sauce"), 30),
    (("pasta", "sauce", "wine"), 10),
    (("pasta",), 15),
    (("wine", "cheese"), 12),
    (("cheese",), 20),
    (("pasta", "cheese"), 4),
    (("sauce", "sauce"), 3),  # two lines of one category: an order with sauce, no pair
)


def purchases() -> list[ClickEvent]:
    events, minute = [], 0
    for categories, count in ORDERS:
        for _ in range(count):
            minute += 1
            lines = tuple(
                LineItem(f"i-{c}-{n}", 10.0, 1, category=c) for n, c in enumerate(categories)
            )
            events.append(
                ClickEvent(
                    f"p{minute}",
                    f"u{minute % 7}",
                    TS + minute * 60_000,
                    EventType.PURCHASE,
                    order_id=f"o{minute}",
                    order_total=10.0 * len(lines),
                    items=lines,
                )
            )
    return events


def check_rules_match_python(client: Any) -> None:
    """On a migrated, empty database: the SQL's rules are the Python count's, to 1e-9; a
    redelivered purchase counts once; pairs below ``min_orders`` and purchases outside the
    window are left out; the rules are stored under their version, and ``v_bundle_rules``
    shows the newest."""
    events = purchases()
    old = ClickEvent(
        "old",
        "u1",
        TS - 40 * DAY_MS,
        EventType.PURCHASE,
        order_id="o-old",
        order_total=20.0,
        items=(LineItem("x", 10.0, 1, "pasta"), LineItem("y", 10.0, 1, "cheese")),
    )
    rows = [event_row(e, 0, i) for i, e in enumerate([*events, old])]
    rows.append(event_row(events[0], 0, 999))  # a producer's resend: the same event again
    insert(client, "events", EVENT_COLUMNS, rows)

    rules = compute_rules(client, days=30, min_orders=5, now_ms=TS + DAY_MS)
    assert rules is not None
    assert rules.baskets == sum(count for _, count in ORDERS)
    counted = count_rules([[line.category or "" for line in e.items] for e in events], 5, 0, 0, 0)
    expected = {(r.antecedent, r.consequent): r for r in counted.rules}
    got = {(r.antecedent, r.consequent): r for r in rules.rules}
    assert set(got) == set(expected) and counted.baskets == rules.baskets
    assert ("pasta", "cheese") not in got  # four orders: below min_orders
    for key, want in expected.items():
        rule = got[key]
        assert rule.orders == want.orders
        assert (rule.support, rule.confidence, rule.lift) == pytest.approx(
            (want.support, want.confidence, want.lift), abs=1e-9
        )
    assert rules.complement(["pasta"], {}) == "sauce"

    newer = compute_rules(client, days=30, min_orders=41, now_ms=TS + 2 * DAY_MS)
    assert newer is not None and newer.rules == ()
    runs = query(client, "SELECT rules_version, rules FROM bundle_rule_runs ORDER BY rules_version")
    assert [(r["rules_version"], r["rules"]) for r in runs] == [
        (TS + DAY_MS, len(expected)),
        (TS + 2 * DAY_MS, 0),
    ]
    latest = query(client, "SELECT count() AS n FROM v_bundle_rules")
    assert latest[0]["n"] == 0  # the newest computation kept no pair

"""``promo rules``: association rules between categories, counted over the purchases in
ClickHouse, stored in ``bundle_rules`` and published to the workers (``streams.bundles``).

A run takes the purchases of the last ``days`` before the latest one (so a backfill or a
simulated past is counted like live traffic), reduces each order to the set of its lines'
categories, and counts in ClickHouse every category and every ordered pair of categories
bought together. Pairs seen in fewer than ``min_orders`` orders are left out: a rule from
three orders is noise. The run stores the rules under a new version (its time in ms), then
sends them to the rules topic; a worker adopts a higher version than it has.

``promo rules --every SECONDS`` repeats it on a schedule (the ``rules`` service of
docker-compose.yml); without it, one run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import fields
from datetime import UTC, datetime

from clickhouse_driver import Client
from kafka import KafkaProducer

from promo.clickhouse import insert, query
from promo.settings import Settings
from streams.bundles import BundleRule, BundleRules

log = logging.getLogger(__name__)

DAY_MS = 86_400_000

#: The orders counted: each purchase once (a redelivered copy may stay in the table until it
#: merges), as the set of the categories its lines name; an order that names none is left
#: out.
BASKETS = """
SELECT event_id, arrayDistinct(arrayFilter(c -> c != '', any(item_categories))) AS cats
FROM events
WHERE type = 'purchase' AND ts_ms >= %(since_ms)s AND ts_ms < %(until_ms)s
GROUP BY event_id
HAVING length(cats) > 0
"""

#: Every ordered pair of categories bought together in at least ``min_orders`` orders, with
#: the orders that hold each, and the rule's measures (``streams.bundles``). One join per
#: level: ClickHouse 18.16 takes no more.
RULES = f"""
SELECT
    antecedent,
    consequent,
    orders,
    antecedent_orders,
    consequent_orders,
    orders / %(baskets)s AS support,
    orders / antecedent_orders AS confidence,
    orders * %(baskets)s / (antecedent_orders * consequent_orders) AS lift
FROM
(
    SELECT antecedent, consequent, orders, antecedent_orders
    FROM
    (
        SELECT pair.1 AS antecedent, pair.2 AS consequent, count() AS orders
        FROM
        (
            SELECT arrayJoin(arrayMap(x -> arrayMap(y -> (x, y), cats), cats)) AS with_one
            FROM ({BASKETS})
        )
        ARRAY JOIN with_one AS pair
        WHERE antecedent != consequent
        GROUP BY antecedent, consequent
        HAVING orders >= %(min_orders)s
    ) AS pairs
    ANY LEFT JOIN
    (
        SELECT arrayJoin(cats) AS antecedent, count() AS antecedent_orders
        FROM ({BASKETS})
        GROUP BY antecedent
    ) AS antecedents USING antecedent
) AS rules
ANY LEFT JOIN
(
    SELECT arrayJoin(cats) AS consequent, count() AS consequent_orders
    FROM ({BASKETS})
    GROUP BY consequent
) AS consequents USING consequent
ORDER BY antecedent, consequent
"""

RUN_COLUMNS = ("rules_version", "computed_at", "since_ms", "until_ms", "baskets", "rules")
RULE_COLUMNS = (
    "rules_version",
    "antecedent",
    "consequent",
    "orders",
    "antecedent_orders",
    "consequent_orders",
    "support",
    "confidence",
    "lift",
)


def compute_rules(
    client: Client, days: float, min_orders: int, now_ms: int | None = None
) -> BundleRules | None:
    """The rules of the purchases in the ``days`` up to the latest one, stored in
    ``bundle_rules`` under a new version; None when there is no purchase to count."""
    computed_at = int(time.time() * 1000) if now_ms is None else now_ms
    latest = query(
        client, "SELECT max(ts_ms) AS latest, count() AS n FROM events WHERE type = 'purchase'"
    )[0]
    if not latest["n"]:
        return None
    until_ms = int(latest["latest"]) + 1
    window = {"since_ms": max(until_ms - int(days * DAY_MS), 0), "until_ms": until_ms}
    baskets = int(query(client, f"SELECT count() AS n FROM ({BASKETS})", window)[0]["n"])
    rows = query(client, RULES, {**window, "baskets": max(baskets, 1), "min_orders": min_orders})
    rules = BundleRules(
        computed_at,
        window["since_ms"],
        until_ms,
        baskets,
        tuple(BundleRule(*(r[f.name] for f in fields(BundleRule))) for r in rows),
    )
    insert(
        client,
        "bundle_rules",
        RULE_COLUMNS,
        [(computed_at, *(r[c] for c in RULE_COLUMNS[1:])) for r in rows],
    )
    stamp = datetime.fromtimestamp(computed_at / 1000, UTC).replace(tzinfo=None)
    insert(
        client,
        "bundle_rule_runs",
        RUN_COLUMNS,
        [(computed_at, stamp, window["since_ms"], until_ms, baskets, len(rows))],
    )
    return rules


def publish_rules(settings: Settings, rules: BundleRules) -> None:
    """Send the rules to the rules topic and wait for the broker to take them."""
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", **settings.kafka_options()
    )
    try:
        producer.send(settings.topic_rules, rules.to_bytes(), key=b"rules").get(timeout=30)
    finally:
        producer.close()

"""Bundle rules on the ClickHouse 18.16 server: the SQL of ``promo rules`` against a count in
Python (tests/bundle_shop.py; tests/current_clickhouse runs the same check on current
ClickHouse)."""

from __future__ import annotations

import pytest
from clickhouse_driver import Client

from agents.rules import readable
from promo.cli import main
from promo.clickhouse import insert, query
from promo.kafka_io import read_messages
from promo.settings import Settings
from streams.sink_rows import EVENT_COLUMNS, event_row
from tests import bundle_shop
from tests.bundle_shop import purchases
from tests.integration.conftest import _with_database


def test_rules_from_purchases_match_a_count_in_python(migrated: Client) -> None:
    bundle_shop.check_rules_match_python(migrated)


def test_promo_rules_stores_the_rules_and_publishes_the_same_to_the_workers(
    migrated: Client,
    clickhouse_url: str,
    broker_url: str,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The command end to end: ClickHouse's purchases in, rules in ``bundle_rules`` and on the
    rules topic, one snapshot a worker reads (``agents.rules``)."""
    insert(
        migrated, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(purchases())]
    )
    topic = f"promo-rules-{unique_name}"
    database = migrated.connection.database
    monkeypatch.setenv("PROMO_CLICKHOUSE_URL", _with_database(clickhouse_url, database))
    monkeypatch.setenv("PROMO_BROKER_URL", broker_url)
    monkeypatch.setenv("PROMO_TOPIC_RULES", topic)
    monkeypatch.setenv("PROMO_RULES_MIN_ORDERS", "5")
    assert main(["rules"]) == 0
    assert "rules v" in capsys.readouterr().out

    ((_, _, key, value),) = list(read_messages(Settings(), topic, idle_ms=2000))
    published = readable(value, 0)
    assert key == b"rules" and published is not None and published.rules
    stored = query(
        migrated,
        "SELECT antecedent, consequent, orders FROM v_bundle_rules ORDER BY antecedent, consequent",
    )
    assert [(r.antecedent, r.consequent, r.orders) for r in published.rules] == [
        (r["antecedent"], r["consequent"], r["orders"]) for r in stored
    ]

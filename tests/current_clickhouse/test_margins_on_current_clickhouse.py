"""Per-item margins on current ClickHouse (chdb): an order's own margin replaces the global
rate in every profit the views and the report compute (tests/margin_shop.py has the shop and
its figures, worked by hand; tests/integration/test_margins.py runs the same on 18.16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from promo.clickhouse import apply_migrations
from tests import margin_shop
from tests.current_clickhouse.conftest import ChdbClient

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"


@pytest.fixture(scope="module")
def shop(current_clickhouse: ChdbClient) -> ChdbClient:
    apply_migrations(current_clickhouse, DDL_DIR)
    margin_shop.write_shop(current_clickhouse)
    return current_clickhouse


def test_the_events_table_keeps_the_margins(shop: ChdbClient) -> None:
    margin_shop.check_the_events_table_keeps_the_margins(shop)


def test_each_decisions_net_profit_uses_its_orders_margin(shop: ChdbClient) -> None:
    margin_shop.check_each_decisions_net_profit_uses_its_orders_margin(shop)


def test_the_report_per_decision_net_profit(shop: ChdbClient) -> None:
    margin_shop.check_the_report_per_decision_net_profit(shop)


def test_the_report_per_user_net_profit_and_its_covariate(shop: ChdbClient) -> None:
    margin_shop.check_the_report_per_user_net_profit_and_its_covariate(shop)


def test_the_off_policy_reward_uses_the_orders_margin(shop: ChdbClient) -> None:
    margin_shop.check_the_off_policy_reward_uses_the_orders_margin(shop)


def test_rows_written_before_0009_read_as_unknown(
    current_clickhouse: ChdbClient, tmp_path: Path
) -> None:
    """On a database of its own (chdb runs one data directory per process)."""
    current_clickhouse.execute("CREATE DATABASE promo_0008")
    current_clickhouse.execute("USE promo_0008")
    try:
        margin_shop.check_rows_written_before_0009_read_as_unknown(
            current_clickhouse, DDL_DIR, tmp_path
        )
    finally:
        current_clickhouse.execute("USE promo")

"""Per-item margins on the ClickHouse 18.16 server: the checks of tests/margin_shop.py (the
same as tests/current_clickhouse/test_margins_on_current_clickhouse.py), so the migration 0009
views and the report's SQL give the hand-worked figures on both engines."""

from __future__ import annotations

from pathlib import Path

from clickhouse_driver import Client

from tests import margin_shop

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"


def test_an_orders_own_margin_replaces_the_rate_everywhere(migrated: Client) -> None:
    margin_shop.write_shop(migrated)
    margin_shop.check_the_events_table_keeps_the_margins(migrated)
    margin_shop.check_each_decisions_net_profit_uses_its_orders_margin(migrated)
    margin_shop.check_the_report_per_decision_net_profit(migrated)
    margin_shop.check_the_report_per_user_net_profit_and_its_covariate(migrated)
    margin_shop.check_the_off_policy_reward_uses_the_orders_margin(migrated)


def test_rows_written_before_0009_read_as_unknown(
    clickhouse_client: Client, tmp_path: Path
) -> None:
    margin_shop.check_rows_written_before_0009_read_as_unknown(clickhouse_client, DDL_DIR, tmp_path)

"""Category offers on the ClickHouse 18.16 server: the per-target view of migration 0013
(tests/category_shop.py; tests/current_clickhouse runs the same check on current ClickHouse)."""

from __future__ import annotations

from clickhouse_driver import Client

from tests import category_shop


def test_decisions_on_category_offers_by_target(migrated: Client) -> None:
    category_shop.check_decisions_on_category_offers_by_target(migrated)

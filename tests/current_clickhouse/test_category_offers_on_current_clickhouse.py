"""Category offers on current ClickHouse (chdb): the per-target view of migration 0013
(tests/category_shop.py; tests/integration runs the same check on 18.16)."""

from __future__ import annotations

from pathlib import Path

from promo.clickhouse import apply_migrations
from tests import category_shop
from tests.current_clickhouse.conftest import ChdbClient

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"


def test_decisions_on_category_offers_by_target(current_clickhouse: ChdbClient) -> None:
    apply_migrations(current_clickhouse, DDL_DIR)
    category_shop.check_decisions_on_category_offers_by_target(current_clickhouse)

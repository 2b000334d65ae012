"""Bundle rules on current ClickHouse (chdb): the SQL of ``promo rules`` against a count in
Python (tests/bundle_shop.py; tests/integration runs the same check on 18.16)."""

from __future__ import annotations

from pathlib import Path

from promo.clickhouse import apply_migrations
from tests import bundle_shop
from tests.current_clickhouse.conftest import ChdbClient

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"


def test_rules_from_purchases_match_a_count_in_python(current_clickhouse: ChdbClient) -> None:
    apply_migrations(current_clickhouse, DDL_DIR)
    bundle_shop.check_rules_match_python(current_clickhouse)

"""Named segments and fairness on current ClickHouse (chdb): migration 0010's columns and
views and the report's fairness figures (tests/fairness_shop.py has the shop and its figures,
worked by hand; tests/integration/test_fairness.py runs the same on 18.16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from promo.clickhouse import apply_migrations
from tests import fairness_shop
from tests.current_clickhouse.conftest import ChdbClient

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"


@pytest.fixture(scope="module")
def shop(current_clickhouse: ChdbClient) -> ChdbClient:
    apply_migrations(current_clickhouse, DDL_DIR)
    fairness_shop.write_shop(current_clickhouse)
    return current_clickhouse


def test_a_segment_is_named_by_its_latest_model_version(shop: ChdbClient) -> None:
    fairness_shop.check_a_segment_is_named_by_its_latest_model_version(shop)


def test_the_decisions_keep_their_groups(shop: ChdbClient) -> None:
    fairness_shop.check_the_decisions_keep_their_groups(shop)


def test_each_user_is_in_the_groups_of_their_first_decision(shop: ChdbClient) -> None:
    fairness_shop.check_each_user_is_in_the_groups_of_their_first_decision(shop)


def test_the_fairness_view_counts_users_decisions_and_offers(shop: ChdbClient) -> None:
    fairness_shop.check_the_fairness_view_counts_users_decisions_and_offers(shop)


def test_the_report_flags_groups_offered_far_less(shop: ChdbClient) -> None:
    fairness_shop.check_the_report_flags_groups_offered_far_less(shop)


def test_the_per_user_effect_of_a_group_is_the_headlines_maths(shop: ChdbClient) -> None:
    fairness_shop.check_the_per_user_effect_of_a_group_is_the_headlines_maths(shop)


def test_the_report_shows_segment_names_and_rule_segments(shop: ChdbClient) -> None:
    fairness_shop.check_the_report_shows_segment_names_and_rule_segments(shop)

"""Named segments and fairness on current ClickHouse (chdb): migration 0010's columns and
views and the report's fairness figures (tests/fairness_shop.py has the shops and their
figures; tests/integration/test_fairness.py runs the same on 18.16)."""

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


def test_v_segment_names_gives_analysts_the_latest_name(shop: ChdbClient) -> None:
    fairness_shop.check_v_segment_names_gives_analysts_the_latest_name(shop)


def test_the_decisions_keep_their_groups(shop: ChdbClient) -> None:
    fairness_shop.check_the_decisions_keep_their_groups(shop)


def test_each_user_keeps_the_group_of_their_first_decision(shop: ChdbClient) -> None:
    fairness_shop.check_each_user_keeps_the_group_of_their_first_decision(shop)


def test_each_decision_counts_in_the_groups_it_was_logged_with(shop: ChdbClient) -> None:
    fairness_shop.check_each_decision_counts_in_the_groups_it_was_logged_with(shop)


def test_the_report_flags_groups_offered_far_less(shop: ChdbClient) -> None:
    fairness_shop.check_the_report_flags_groups_offered_far_less(shop)


def test_the_per_user_effect_is_by_what_was_fixed_before_the_first_decision(
    shop: ChdbClient,
) -> None:
    fairness_shop.check_the_per_user_effect_is_by_what_was_fixed_before_the_first_decision(shop)


def test_the_report_shows_logged_segment_names_and_rule_segments(shop: ChdbClient) -> None:
    fairness_shop.check_the_report_shows_logged_segment_names_and_rule_segments(shop)


def test_the_engines_decisions_reach_every_rule_segment(current_clickhouse: ChdbClient) -> None:
    # A database of its own: chdb runs one engine per process, and the hand-worked shop's
    # rows must not mix with the engine's.
    current_clickhouse.execute("CREATE DATABASE engine_shop")
    current_clickhouse.execute("USE engine_shop")
    try:
        apply_migrations(current_clickhouse, DDL_DIR)
        out = fairness_shop.write_engine_shop(current_clickhouse)
        fairness_shop.check_the_engines_decisions_reach_every_rule_segment(current_clickhouse, out)
    finally:
        current_clickhouse.execute("USE promo")

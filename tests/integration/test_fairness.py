"""Named segments and fairness on the ClickHouse 18.16 server: the checks of
tests/fairness_shop.py, which tests/current_clickhouse/test_fairness_on_current_clickhouse.py
runs on the current engine, so migration 0010's views and the report's fairness figures agree
on both engines."""

from __future__ import annotations

from clickhouse_driver import Client

from tests import fairness_shop


def test_segment_names_rule_segments_and_fairness_per_group(migrated: Client) -> None:
    fairness_shop.write_shop(migrated)
    fairness_shop.check_a_segment_is_named_by_its_latest_model_version(migrated)
    fairness_shop.check_the_decisions_keep_their_groups(migrated)
    fairness_shop.check_each_user_is_in_the_groups_of_their_first_decision(migrated)
    fairness_shop.check_the_fairness_view_counts_users_decisions_and_offers(migrated)
    fairness_shop.check_the_report_flags_groups_offered_far_less(migrated)
    fairness_shop.check_the_per_user_effect_of_a_group_is_the_headlines_maths(migrated)
    fairness_shop.check_the_report_shows_segment_names_and_rule_segments(migrated)

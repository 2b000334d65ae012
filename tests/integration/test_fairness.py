"""Named segments and fairness on the ClickHouse 18.16 server: the checks of
tests/fairness_shop.py, which tests/current_clickhouse/test_fairness_on_current_clickhouse.py
runs on the current engine, so migration 0010's views and the report's fairness figures agree
on both engines."""

from __future__ import annotations

from clickhouse_driver import Client

from tests import fairness_shop


def test_segment_names_rule_segments_and_fairness_per_group(migrated: Client) -> None:
    fairness_shop.write_shop(migrated)
    fairness_shop.check_v_segment_names_gives_analysts_the_latest_name(migrated)
    fairness_shop.check_the_decisions_keep_their_groups(migrated)
    fairness_shop.check_each_user_keeps_the_group_of_their_first_decision(migrated)
    fairness_shop.check_each_decision_counts_in_the_groups_it_was_logged_with(migrated)
    fairness_shop.check_the_report_flags_groups_offered_far_less(migrated)
    fairness_shop.check_the_per_user_effect_is_by_what_was_fixed_before_the_first_decision(migrated)
    fairness_shop.check_the_report_shows_logged_segment_names_and_rule_segments(migrated)


def test_the_engines_decisions_reach_every_rule_segment(migrated: Client) -> None:
    out = fairness_shop.write_engine_shop(migrated)
    fairness_shop.check_the_engines_decisions_reach_every_rule_segment(migrated, out)

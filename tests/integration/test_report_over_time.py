"""The per-user effect over time on ClickHouse 18.16: the hand-worked dataset of
tests/itt_dataset.py, every record written twice. The same checks run on current ClickHouse
in tests/current_clickhouse/test_effect_over_time_on_current_clickhouse.py."""

from __future__ import annotations

import re

import pytest
from clickhouse_driver import Client

from promo.cumulative_users import cumulative_user_columns
from promo.report import OVER_TIME_TITLE, format_report, over_time_table
from promo.report_figures import (
    PRE_PERIOD_DAYS,
    headline,
    read_evaluation,
)
from tests.itt_dataset import DAY, DAYS, EXPECTED, MARGIN, by_hand, write_dataset


def test_each_day_holds_the_users_assigned_by_then_and_their_outcomes_to_its_end(
    migrated: Client,
) -> None:
    write_dataset(migrated)
    write_dataset(migrated)  # a redelivery changes nothing
    days = cumulative_user_columns(migrated, PRE_PERIOD_DAYS * DAY)
    assert [day for day, _ in days] == DAYS
    for day, columns in days:
        rows = sorted(zip(*(list(c) for c in columns), strict=True))
        assert rows == sorted(EXPECTED[day].values()), day


def test_the_report_shows_each_days_headline_and_the_last_day_is_the_headline(
    migrated: Client,
) -> None:
    write_dataset(migrated)
    write_dataset(migrated)
    evaluation = read_evaluation(migrated, gross_margin=MARGIN)
    effects = evaluation.over_time
    assert [e.day for e in effects] == DAYS
    for e in effects:
        h = headline(by_hand(EXPECTED[e.day]), MARGIN)
        assert h is not None
        assert (e.treatment_users, e.control_users) == (h.treatment.n, h.control.n)
        assert e.conversion == h.conversion and e.net == h.net

    last, h = effects[-1], evaluation.headline
    assert h is not None and (last.treatment_users, last.control_users) == (4, 3)
    for mine, theirs in ((last.conversion, h.conversion), (last.net, h.net)):
        for a, b in ((mine.raw, theirs.raw), (mine.cuped.difference, theirs.cuped.difference)):
            assert (a.value, a.low, a.high) == pytest.approx((b.value, b.low, b.high), rel=1e-12)

    report = format_report(evaluation)
    print(report)
    section = next(s for s in report.split("\n\n") if s.startswith(OVER_TIME_TITLE))
    _, rows = over_time_table(effects)
    lines = section.splitlines()
    for row in rows:
        assert any(re.split(r"\s{2,}", line.strip()) == row for line in lines), row
    assert rows[-1][5] == "CUPED"  # the covariate varies: the verdict's estimate
    assert "not a sequential test" in " ".join(section.split())

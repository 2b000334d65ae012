"""The per-user effect over time on current ClickHouse (chdb): the hand-worked dataset of
tests/itt_dataset.py, every record written twice with merges stopped, so only FINAL keeps a
copy from counting twice. The same checks run on 18.16 in
tests/integration/test_report_over_time.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from promo.clickhouse import apply_migrations
from promo.cumulative_users import cumulative_user_columns
from promo.report_figures import (
    PRE_PERIOD_DAYS,
    DayEffect,
    effect_over_time,
    headline,
    user_figures,
)
from tests.current_clickhouse.conftest import ChdbClient
from tests.itt_dataset import (
    DAY,
    DAY0,
    DAYS,
    EXPECTED,
    HOUR,
    MARGIN,
    by_hand,
    decision,
    purchase,
    redeemed,
    write,
    write_dataset,
)

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"


@pytest.fixture(scope="module")
def shop(current_clickhouse: ChdbClient) -> ChdbClient:
    apply_migrations(current_clickhouse, DDL_DIR)
    for table in ("events", "decisions", "outcomes"):
        current_clickhouse.execute(f"SYSTEM STOP MERGES {table}")
    write_dataset(current_clickhouse)
    write_dataset(current_clickhouse)  # a redelivery
    return current_clickhouse


def test_each_day_holds_the_users_assigned_by_then_and_their_outcomes_to_its_end(
    shop: ChdbClient,
) -> None:
    days = cumulative_user_columns(shop, PRE_PERIOD_DAYS * DAY)
    assert [day for day, _ in days] == DAYS
    for day, columns in days:
        rows = sorted(zip(*(c.tolist() for c in columns), strict=True))
        assert rows == sorted(EXPECTED[day].values()), day


def test_each_days_effect_is_the_headline_of_that_days_users(shop: ChdbClient) -> None:
    effects = effect_over_time(shop, MARGIN)
    assert [e.day for e in effects] == DAYS
    for e in effects:
        h = headline(by_hand(EXPECTED[e.day]), MARGIN)
        assert h is not None
        assert (e.treatment_users, e.control_users) == (h.treatment.n, h.control.n)
        assert e.conversion == h.conversion and e.net == h.net
    assert effects[-1].net.adjusted  # the covariate varies: the verdict's figure is CUPED


def _assert_is_the_headline(last: DayEffect, client: ChdbClient) -> None:
    h = headline(user_figures(client), MARGIN)
    assert h is not None
    assert (last.treatment_users, last.control_users) == (h.treatment.n, h.control.n)
    for mine, theirs in ((last.conversion, h.conversion), (last.net, h.net)):
        for a, b in ((mine.raw, theirs.raw), (mine.cuped.difference, theirs.cuped.difference)):
            assert (a.value, a.low, a.high) == pytest.approx((b.value, b.low, b.high), rel=1e-12)


def test_the_last_day_is_the_headline(shop: ChdbClient) -> None:
    last = effect_over_time(shop, MARGIN)[-1]
    assert (last.treatment_users, last.control_users) == (4, 3)
    _assert_is_the_headline(last, shop)


# One record on a day after the dataset's last, in each table the headline reads: a user first
# decided then, a purchase then, and a redemption whose purchase event is not stored yet (the
# events sink lagging behind the outcomes sink).
LATE = DAY0 + 76 * HOUR
LATER_RECORDS = {
    "decision": {"decisions": [decision("c4", True, 0, 76)]},
    "purchase": {"events": [purchase("c3", 9, LATE, 5.0)]},
    "redemption": {"outcomes": [redeemed("t3", 9, LATE, 30.0, 2.0)]},
}


@pytest.fixture(params=list(LATER_RECORDS))
def later_record(shop: ChdbClient, request: pytest.FixtureRequest) -> Iterator[ChdbClient]:
    """The dataset and one later record, in a database of their own."""
    shop.execute(f"CREATE DATABASE later_{request.param}")
    shop.execute(f"USE later_{request.param}")
    try:
        apply_migrations(shop, DDL_DIR)
        write_dataset(shop)
        write(shop, **LATER_RECORDS[request.param])
        yield shop
    finally:
        shop.execute("USE promo")


def test_the_last_day_is_that_of_the_latest_record_whichever_table_holds_it(
    later_record: ChdbClient,
) -> None:
    effects = effect_over_time(later_record, MARGIN)
    assert [e.day for e in effects] == [*DAYS, dt.date(2023, 11, 18)]
    _assert_is_the_headline(effects[-1], later_record)

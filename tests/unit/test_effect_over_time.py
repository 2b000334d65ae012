"""The per-user effect over time without a server: the query's rows (users x days) grouped by
day and run through the headline's own maths; the SQL itself is checked on both engines
(tests/current_clickhouse, tests/integration)."""

from __future__ import annotations

import datetime as dt
import doctest
from typing import Any

import numpy as np

from promo import cumulative_users
from promo.report_figures import UserFigures, effect_over_time, headline

MARGIN = 0.4
DAY = 19_676  # 2023-11-15, in days since the epoch

# (day, arm, converted, revenue, discount, rate_base, net_fixed, pre_purchases, pre_rate_base,
# pre_net_fixed) per user known by then.
ROWS = [
    (DAY, "treatment", 1, 100.0, 10.0, 110.0, -10.0, 1, 20.0, 0.0),
    (DAY, "treatment", 0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0),
    (DAY, "control", 0, 0.0, 0.0, 0.0, 0.0, 1, 30.0, 0.0),  # one control user: no interval
    (DAY + 1, "treatment", 1, 100.0, 10.0, 110.0, -10.0, 1, 20.0, 0.0),
    (DAY + 1, "treatment", 1, 40.0, 0.0, 0.0, 16.0, 0, 0.0, 0.0),  # an order with its margin
    (DAY + 1, "treatment", 0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0),
    (DAY + 1, "control", 1, 50.0, 0.0, 50.0, 0.0, 1, 30.0, 0.0),
    (DAY + 1, "control", 0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0.0),
]


class _Columns:
    """The one ``execute`` call ``cumulative_user_columns`` makes, answered column by column
    as clickhouse-driver does with ``columnar=True``."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def execute(self, sql: str, params: dict[str, Any], *, columnar: bool) -> list[Any]:
        assert columnar and params == {"pre_period_ms": 7 * 86_400_000}
        return [list(column) for column in zip(*self.rows, strict=True)] if self.rows else []


def _figures(rows: list[tuple[Any, ...]], arm: str) -> UserFigures:
    return UserFigures(
        *(np.array([r[i] for r in rows if r[1] == arm], float) for i in range(2, 10))
    )  # fmt: skip


def test_a_day_is_the_headline_of_its_users_and_days_without_an_interval_are_left_out() -> None:
    [second] = effect_over_time(_Columns(ROWS), MARGIN)  # type: ignore[arg-type]
    day_rows = [r for r in ROWS if r[0] == DAY + 1]
    h = headline({arm: _figures(day_rows, arm) for arm in ("treatment", "control")}, MARGIN)
    assert h is not None
    assert second.day == dt.date(2023, 11, 16)
    assert (second.treatment_users, second.control_users) == (3, 2)
    assert second.conversion == h.conversion and second.net == h.net


def test_no_decisions_no_days() -> None:
    assert effect_over_time(_Columns([]), MARGIN) == []  # type: ignore[arg-type]


def test_days_come_oldest_first_whatever_the_rows_order() -> None:
    days = cumulative_users.cumulative_user_columns(_Columns(ROWS[::-1]), 7 * 86_400_000)  # type: ignore[arg-type]
    assert [day for day, _ in days] == [dt.date(2023, 11, 15), dt.date(2023, 11, 16)]
    assert [len(columns[0]) for _, columns in days] == [3, 5]


def test_docstring_examples() -> None:
    result = doctest.testmod(cumulative_users)
    assert result.attempted > 0 and result.failed == 0

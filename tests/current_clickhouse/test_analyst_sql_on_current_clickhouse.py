"""Every query of the analyst SQL guide (docs/analyst-sql.md) on current ClickHouse (chdb).

The queries are read from the guide itself, so a query edited there is the query tested here;
tests/integration/test_analyst_sql.py runs the same ones on the 18.16 server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from promo.clickhouse import apply_migrations
from streams.evaluation import Moments, difference_standard_error
from tests.analyst_sql import GuideQuery, read_guide, user_net_profits, write_sample
from tests.current_clickhouse.conftest import ChdbClient

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"
QUERIES = read_guide()


@pytest.fixture(scope="module")
def shop(current_clickhouse: ChdbClient) -> ChdbClient:
    """The migrated database holding the sample shop, every row written twice."""
    apply_migrations(current_clickhouse, DDL_DIR)
    write_sample(current_clickhouse)
    return current_clickhouse


def test_the_guide_answers_at_least_ten_questions() -> None:
    assert len({q.question for q in QUERIES}) >= 10


@pytest.mark.parametrize("query", QUERIES, ids=[q.question.split(".")[0] for q in QUERIES])
def test_the_query_answers(shop: ChdbClient, query: GuideQuery) -> None:
    rows = shop.execute(query.sql)
    assert rows, f"{query.question}: no rows from the sample shop"


@pytest.mark.parametrize(("number", "margin"), [(2, None), (3, 0.3)])
def test_the_interval_queries_agree_with_the_report_maths(
    shop: ChdbClient, number: int, margin: float | None
) -> None:
    """Questions 2 (revenue) and 3 (net profit) against ``streams.evaluation`` on the users'
    own values: the same difference, and the same standard error (the wider of Welch's and the
    pooled one) behind the ± 1.96 half-width."""
    (query,) = (q for q in QUERIES if q.question.startswith(f"{number}. "))
    (row,), columns = shop.execute(query.sql, with_column_types=True)
    got = dict(zip((name for name, _ in columns), row, strict=True))
    if margin is None:
        users = shop.execute("SELECT control, revenue FROM v_user_outcomes")
        arms = [[revenue for control, revenue in users if control == arm] for arm in (0, 1)]
    else:  # from the sample's orders, each by the definition: some carry their own margin
        nets = user_net_profits(margin).values()
        arms = [[net for control, net in nets if control == arm] for arm in (False, True)]
    treatment, control = (Moments.of(np.array(values)) for values in arms)
    difference = got["difference" if margin is None else "net_profit_difference"]
    assert difference == pytest.approx(treatment.mean - control.mean)
    se = difference_standard_error(treatment, control)
    assert (got["high_95"] - got["low_95"]) / 2 == pytest.approx(1.96 * se)

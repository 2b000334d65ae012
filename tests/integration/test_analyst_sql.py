"""Every query of the analyst SQL guide (docs/analyst-sql.md) on the ClickHouse 18.16 server.

The queries are read from the guide itself; tests/current_clickhouse runs the same ones on the
current engine, so a query that one of the two refuses fails here or there.
"""

from __future__ import annotations

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from tests.analyst_sql import read_guide, write_sample


def test_every_query_of_the_guide_answers(migrated: Client) -> None:
    """One migrated database for all of them; every failing question is named, not only the
    first."""
    queries = read_guide()
    assert len({q.question for q in queries}) >= 10
    write_sample(migrated)
    failures = {}
    for query in queries:
        try:
            rows = migrated.execute(query.sql)
        except ClickHouseError as exc:
            failures[query.question] = str(exc).split("Stack trace")[0].strip()
            continue
        if not rows:
            failures[query.question] = "no rows from the sample shop"
    assert failures == {}

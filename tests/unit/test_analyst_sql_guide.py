"""The analyst SQL guide's queries, read as text: what both ClickHouse 18.16 and the current
server accept, and FINAL on every table read. The engines themselves run them in
tests/current_clickhouse and tests/integration (test_analyst_sql*)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.analyst_sql import GuideQuery, read_guide

QUERIES = read_guide()
DDL = (Path(__file__).resolve().parents[2] / "deploy" / "clickhouse").glob("*.sql")
TABLES = {t for f in DDL for t in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", f.read_text())}
# What 18.16 refuses (shared/INFRA.md), and positions in ORDER BY, which it reads as constants.
REFUSED_BY_18_16 = {
    "window function": r"\bOVER\s*\(",
    "WITH ... AS (subquery)": r"\bWITH\s+\w+\s+AS\s*\(",
    "DateTime64": r"\bDateTime64\b",
    "Map": r"\bMap\s*\(",
    "JSONExtract": r"\bJSONExtract",
    "ORDER BY a position": r"\bORDER\s+BY\s+\d",
}
IDS = [q.question.split(".")[0] for q in QUERIES]


def test_at_least_ten_questions_each_with_its_own_heading() -> None:
    questions = [q.question for q in QUERIES]
    assert len(questions) >= 10
    assert len(set(questions)) == len(questions)


def test_the_tables_are_read_from_the_ddl() -> None:
    assert {"events", "decisions", "outcomes", "suppressions", "dead_letters"} <= TABLES


@pytest.mark.parametrize("query", QUERIES, ids=IDS)
def test_one_statement_per_block(query: GuideQuery) -> None:
    assert query.sql.upper().startswith("SELECT")
    assert ";" not in query.sql


@pytest.mark.parametrize("query", QUERIES, ids=IDS)
def test_every_table_is_read_with_final(query: GuideQuery) -> None:
    tables = "|".join(sorted(TABLES))
    unmerged = re.findall(rf"\b(?:FROM|JOIN)\s+({tables})\b(?!\s+FINAL)", query.sql)
    assert unmerged == []


@pytest.mark.parametrize("query", QUERIES, ids=IDS)
def test_only_sql_that_clickhouse_18_16_accepts(query: GuideQuery) -> None:
    found = [name for name, pattern in REFUSED_BY_18_16.items() if re.search(pattern, query.sql)]
    assert found == []
    joins = re.findall(r"(\w+)\s+(?:LEFT\s+|INNER\s+|RIGHT\s+|FULL\s+)?JOIN\b", query.sql)
    assert all(strictness in ("ANY", "ALL") for strictness in joins), joins

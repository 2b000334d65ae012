"""ClickHouse tables of the simulator: the ground truth per run, and one row per run.

The DDL stays within what ClickHouse 18.16 and current versions both accept (no DateTime64,
Map, Bool or LowCardinality). Both tables are ReplacingMergeTree, so writing a run twice
keeps one copy. Rows go in as the insert's parameter, never inline in the SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from clickhouse_driver import Client

from simulator.truth import TruthRow

TRUTH_DDL = """
CREATE TABLE IF NOT EXISTS sim_truth (
    run_id String,
    user_id String,
    action String,
    response_type String,
    p_purchase Float64,
    expected_revenue Float64,
    expected_discount Float64,
    expected_profit Float64
) ENGINE = ReplacingMergeTree() ORDER BY (run_id, user_id, action)
"""

RUNS_DDL = """
CREATE TABLE IF NOT EXISTS sim_runs (
    run_id String,
    started_at DateTime,
    sim_start_ms UInt64,
    sim_end_ms UInt64,
    users UInt32,
    events_sent UInt64,
    malformed_sent UInt64,
    offers_received UInt64,
    offers_shown UInt64,
    purchases UInt64
) ENGINE = ReplacingMergeTree() ORDER BY run_id
"""

RUN_COLUMNS = (
    "run_id",
    "started_at",
    "sim_start_ms",
    "sim_end_ms",
    "users",
    "events_sent",
    "malformed_sent",
    "offers_received",
    "offers_shown",
    "purchases",
)

INSERT_BATCH = 50_000


def connect(url: str, password: str = "") -> Client:
    """A client for ``clickhouse://user[:password]@host[:port]/database``.

    A password in the URL wins over ``password`` (which keeps secrets out of URLs in logs).
    """
    parts = urlsplit(url)
    if parts.scheme != "clickhouse" or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(f"expected clickhouse://user@host:port/database, got {url!r}")
    return Client(
        host=parts.hostname,
        port=parts.port or 9000,
        user=unquote(parts.username or "default"),
        password=unquote(parts.password) if parts.password else password,
        database=parts.path.strip("/"),
    )


def create_tables(client: Client) -> None:
    client.execute(TRUTH_DDL)
    client.execute(RUNS_DDL)


def insert_truth(client: Client, run_id: str, rows: Sequence[TruthRow]) -> None:
    for start in range(0, len(rows), INSERT_BATCH):
        client.execute(
            "INSERT INTO sim_truth (run_id, user_id, action, response_type, p_purchase, "
            "expected_revenue, expected_discount, expected_profit) VALUES",
            list(_truth_tuples(run_id, rows[start : start + INSERT_BATCH])),
        )


def insert_run(client: Client, row: dict[str, Any]) -> None:
    """One ``sim_runs`` row; ``started_at`` is a Unix time in seconds."""
    values = dict(row, started_at=datetime.fromtimestamp(row["started_at"], tz=UTC))
    client.execute(
        f"INSERT INTO sim_runs ({', '.join(RUN_COLUMNS)}) VALUES",
        [tuple(values[name] for name in RUN_COLUMNS)],
    )


def _truth_tuples(run_id: str, rows: Iterable[TruthRow]) -> Iterable[tuple[Any, ...]]:
    for r in rows:
        yield (
            run_id,
            r.user_id,
            r.action,
            r.response_type,
            r.p_purchase,
            r.expected_revenue,
            r.expected_discount,
            r.expected_profit,
        )

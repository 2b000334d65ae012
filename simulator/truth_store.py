"""ClickHouse rows of the simulator: the ground truth per run, and one row per run.

The tables ``sim_truth`` and ``sim_runs`` belong to the project's schema
(``deploy/clickhouse``, applied by ``promo migrate``); both are ReplacingMergeTree, so writing
a run twice keeps one copy. Rows go in as the insert's parameter, never inline in the SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import Client

from simulator.truth import TruthRow

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

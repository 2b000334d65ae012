"""``promo evaluate``'s ClickHouse side: each policy's run in a database of its own, and the
estimate an analyst would read from it through the report's own SQL.

The estimate must come from the logs alone, as in production: decisions, outcomes and
purchase events go in through the sinks' row builders, the migrations create the same views,
and :func:`promo.report_figures.net_profit_effect` reads the per-user treatment-vs-control
difference exactly as ``promo report`` prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from promo.clickhouse import apply_migrations, connect_url, insert
from promo.report_figures import net_profit_effect
from promo.settings import Settings
from simulator.closed_loop import LoopResult
from streams.sink_rows import (
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    decision_row,
    event_row,
    outcome_row,
)

#: Rows per insert: well within what the driver sends in one block.
CHUNK = 50_000


def sql_estimate(settings: Settings, policy: str, run: LoopResult) -> dict[str, Any]:
    """Load ``run`` into database ``<db>_eval_<policy>`` (emptied first) and read the
    report's per-user net profit difference back, scaled to the treated users."""
    url, database = _eval_url(settings.clickhouse_url, policy)
    password = settings.clickhouse_password.get_secret_value()
    admin = connect_url(url, password)
    admin.execute(f"DROP DATABASE IF EXISTS `{database}`")
    admin.disconnect()
    client = connect_url(url, password)
    try:
        apply_migrations(client, settings.clickhouse_ddl_dir)
        _insert_all(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in run.decisions])
        _insert_all(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in run.outcomes])
        rows = [event_row(e, 0, i) for i, e in enumerate(run.purchases)]
        _insert_all(client, "events", EVENT_COLUMNS, rows)
        effect = net_profit_effect(client, gross_margin=settings.gross_margin)
    finally:
        client.disconnect()
    if effect is None:
        return {"database": database, "value": None}
    n = effect.treatment_users
    e = effect.per_user
    return {
        "database": database,
        "value": round(e.value * n, 2),
        "low": round(e.low * n, 2),
        "high": round(e.high * n, 2),
        "per_user": round(e.value, 4),
        "treated_users": n,
        "control_users": effect.control_users,
        "cuped": effect.cuped,
    }


def _insert_all(client: Any, table: str, columns: Sequence[str], rows: Sequence[Any]) -> None:
    for start in range(0, len(rows), CHUNK):
        insert(client, table, columns, rows[start : start + CHUNK])


def _eval_url(url: str, policy: str) -> tuple[str, str]:
    parts = urlsplit(url)
    database = f"{parts.path.strip('/')}_eval_{policy}"
    return urlunsplit(parts._replace(path=f"/{database}")), database

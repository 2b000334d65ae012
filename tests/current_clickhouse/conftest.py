"""Current ClickHouse in-process (chdb), for SQL that must also run on the production server.

Only ClickHouse 18.16 runs as a server here (shared/INFRA.md); production runs the current
image. chdb embeds a current engine but is large, so it lives in the optional extra
``current-clickhouse`` and these tests run only when asked for by path, as
``make test-current-clickhouse`` does: the default ``pytest`` run does not collect them. When
asked for, a missing chdb fails them: it never turns them into a skip.

``ChdbClient`` answers the part of ``clickhouse_driver.Client.execute`` that the project's
code calls, so ``promo.clickhouse.apply_migrations`` and the report's queries run unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver.util.escape import escape_param, escape_params

HERE = Path(__file__).parent
EXTRA = "current-clickhouse"


class EngineError(Exception):
    """Current ClickHouse refused or failed a statement (chdb's error, under a name of ours)."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect this folder only when the command line names it (or a file in it)."""
    asked = ((config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args)
    if any(path == HERE or HERE in path.parents for path in asked):
        return None
    return collection_path.is_relative_to(HERE) or None


class ChdbClient:
    """``execute`` of clickhouse-driver over a chdb session: the same ``%(name)s`` parameter
    substitution (the driver's own escaping), ``INSERT ... VALUES`` with rows as the
    parameter, ``with_column_types`` and ``columnar``. Column types are pyarrow's, not
    ClickHouse's (callers here read only the names), and a DateTime comes back as epoch
    seconds."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def execute(
        self,
        query: str,
        params: dict[str, Any] | Sequence[Sequence[Any]] | None = None,
        *,
        with_column_types: bool = False,
        columnar: bool = False,
    ) -> Any:
        if query.rstrip().upper().endswith("VALUES") and params is not None:
            rows = ", ".join(f"({', '.join(map(_literal, row))})" for row in params)
            self._query(f"{query} {rows}")
            return len(params)
        if isinstance(params, dict):
            query = query % escape_params(params, None)  # as clickhouse-driver does
        table = self._query(query, "ArrowTable")
        columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
        if columnar:
            data: Any = columns if table.num_rows else []
        else:
            data = list(zip(*columns, strict=True))
        if with_column_types:
            return data, [(field.name, str(field.type)) for field in table.schema]
        return data

    def _query(self, sql: str, output_format: str = "CSV") -> Any:
        try:
            return self._session.query(sql, output_format)
        except RuntimeError as exc:  # chdb's ChdbError; the message is the server's
            raise EngineError(str(exc)) from exc


def _literal(value: Any) -> str:
    """A SQL literal for a value of a row as the sinks build it for clickhouse-driver."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, datetime):
        return str(int(value.timestamp()))  # DateTime columns take epoch seconds
    if isinstance(value, list | tuple):
        return f"[{', '.join(map(_literal, value))}]"
    return str(escape_param(value, None))


@pytest.fixture(scope="module")
def current_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbClient]:
    """A client on an empty database ``promo`` of a new chdb data directory."""
    try:
        from chdb.session import Session
    except ImportError as exc:
        pytest.fail(
            f"chdb is not installed ({exc}): these tests need the optional extra {EXTRA!r}: "
            f"make test-current-clickhouse, or .venv/bin/pip install -e '.[{EXTRA}]'",
            pytrace=False,
        )
    session = Session(str(tmp_path_factory.mktemp("chdb")))
    try:
        session.query("CREATE DATABASE promo")
        session.query("USE promo")
        yield ChdbClient(session)
    finally:
        session.close()

"""ClickHouse over the native protocol (clickhouse-driver): connect, migrate, insert a batch.

Migrations are the numbered files ``NNNN_name.sql`` of ``Settings.clickhouse_ddl_dir``
(``deploy/clickhouse``). Each applied file is recorded in ``schema_migrations`` with the
SHA-256 of its bytes; an applied file that changed afterwards stops the run, because its new
text never reached databases that already applied it. Statements use ``IF NOT EXISTS``, so a
run interrupted half-way, or two processes migrating at once, converge on the same schema.

Everything here runs on ClickHouse 18.16 and current ClickHouse (see shared/INFRA.md). HTTP
drivers do not work with 18.16: only the native protocol is used.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError
from clickhouse_driver.errors import ServerException

from promo.settings import Settings
from streams.errors import ConfigError, PromoError, ServerUnavailable, SinkError

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


class ClickHouseUnavailable(ServerUnavailable):
    """ClickHouse did not answer or refused the connection; the message names the server."""


class RowsRejected(SinkError):
    """ClickHouse (or the driver, encoding them) refused the rows themselves: a value out of
    range or of the wrong type. Retrying the same rows cannot help; the caller isolates them."""


#: Errors about the data of an insert, not about the server: type mismatch, cannot parse,
#: argument out of bound, cannot convert, value out of range, NULL into a plain column,
#: illegal type, string too large, array sizes differ.
_REJECTED_ROWS = frozenset({53, 6, 69, 70, 321, 349, 43, 131, 190})


_UNKNOWN_DATABASE = 81
#: Server error codes that no retry can cure, and the settings that cause them: retrying a
#: wrong password forever (with a 17-line server trace each time) helps nobody.
_PERMANENT = {
    192: "PROMO_CLICKHOUSE_URL (user)",  # UNKNOWN_USER
    193: "PROMO_CLICKHOUSE_PASSWORD",  # WRONG_PASSWORD
    194: "PROMO_CLICKHOUSE_PASSWORD",  # REQUIRED_PASSWORD
    516: "PROMO_CLICKHOUSE_URL (user) or PROMO_CLICKHOUSE_PASSWORD",  # AUTHENTICATION_FAILED
    81: "PROMO_CLICKHOUSE_URL (database)",  # UNKNOWN_DATABASE
    497: "PROMO_CLICKHOUSE_URL (user): the user lacks a privilege",  # NOT_ENOUGH_PRIVILEGES
    164: "PROMO_CLICKHOUSE_URL (user): the user is read-only",  # READONLY
    60: "the ClickHouse schema: run `promo migrate`",  # UNKNOWN_TABLE
    16: "the ClickHouse schema: run `promo migrate`",  # NO_SUCH_COLUMN_IN_TABLE
}


def server_message(exc: BaseException) -> str:
    """The server's message without its stack trace (the first lines say it all)."""
    return " ".join(str(exc).split("Stack trace")[0].split())


def permanent_error(exc: BaseException, where: str) -> ConfigError | None:
    """A ``ConfigError`` naming the setting to fix when ``exc`` is one no retry can cure.

    >>> print(permanent_error(ServerException("Wrong password", code=193), "ch://x"))
    PROMO_CLICKHOUSE_PASSWORD: ClickHouse at ch://x refused: Code: 193. Wrong password
    >>> permanent_error(ConnectionRefusedError(111, "refused"), "ch://x") is None
    True
    """
    if isinstance(exc, ServerException) and exc.code in _PERMANENT:
        return ConfigError(
            f"{_PERMANENT[exc.code]}: ClickHouse at {where} refused: {server_message(exc)}"
        )
    return None


class MigrationError(PromoError):
    """The DDL folder does not match what the database has applied, or a statement failed."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered DDL file."""

    version: int
    name: str
    text: str
    checksum: str

    def statements(self) -> list[str]:
        """The file's statements: each ends with ``;`` at the end of a line.

        >>> m = Migration(1, "0001_x.sql", "-- a table\\nCREATE TABLE t\\n(x UInt8)\\n;\\n", "")
        >>> m.statements()
        ['CREATE TABLE t\\n(x UInt8)']
        """
        statements: list[str] = []
        lines: list[str] = []
        for line in self.text.splitlines():
            if line.lstrip().startswith("--"):
                continue  # whole-line comments only; a `--` inside a string literal stays
            lines.append(line)
            if line.rstrip().endswith(";"):
                statement = "\n".join(lines).strip().removesuffix(";").strip()
                if statement:
                    statements.append(statement)
                lines = []
        if "\n".join(lines).strip():
            raise MigrationError(f"{self.name}: the last statement does not end with ';'")
        return statements


def connect(settings: Settings) -> Client:
    """A client on the database of ``settings.clickhouse_url``, created if it is missing."""
    return connect_url(settings.clickhouse_url, settings.clickhouse_password.get_secret_value())


def connect_url(url: str, password: str = "") -> Client:
    """A client on the database of ``clickhouse://user@host:port/database``, created if missing.

    A writer or an analyst may not create databases (least privilege), so the database is
    tried first; only when it does not exist is it created, through a connection to
    ``default`` (a client opened on a missing database fails at its first query).
    """
    parts = urlsplit(url)
    database = parts.path.strip("/")
    if parts.scheme != "clickhouse" or not _IDENTIFIER.match(database):
        raise ConfigError(
            f"PROMO_CLICKHOUSE_URL: expected clickhouse://user@host:port/database with a plain "
            f"database name, got {url!r}"
        )
    options: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 9000,
        "user": unquote(parts.username or "default"),
        "password": unquote(parts.password) if parts.password else password,
        "client_name": "promo-stream",
        "connect_timeout": 5,
    }
    where = f"clickhouse://{options['user']}@{options['host']}:{options['port']}"
    client = Client(database=database, **options)
    try:
        client.execute("SELECT 1")
        return client
    except ServerException as exc:
        client.disconnect()
        if exc.code != _UNKNOWN_DATABASE:
            raise permanent_error(exc, where) or ClickHouseUnavailable(
                f"ClickHouse at {where}: {server_message(exc)}"
            ) from exc
    except Exception as exc:  # socket errors: say where we tried
        client.disconnect()
        raise ClickHouseUnavailable(f"ClickHouse at {where}: {server_message(exc)}") from exc
    bootstrap = Client(database="default", **options)
    try:
        bootstrap.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    except Exception as exc:
        raise permanent_error(exc, where) or ClickHouseUnavailable(
            f"ClickHouse at {where}: {server_message(exc)}"
        ) from exc
    finally:
        bootstrap.disconnect()
    return Client(database=database, **options)


def pending_migrations(client: Client, ddl_dir: Path) -> list[str]:
    """The migration files of ``ddl_dir`` the database has not applied."""
    applied = {v for (v,) in client.execute("SELECT version FROM schema_migrations FINAL")}
    return [m.name for m in read_migrations(ddl_dir) if m.version not in applied]


def check_schema(settings: Settings) -> None:
    """At start-up: ClickHouse takes our credentials and has every migration applied.

    A bad setting raises ``ConfigError`` naming it, so the worker stops before it takes a
    single event; an unreachable server raises ``ClickHouseUnavailable`` (an outage: the
    caller may go on, and the sinks retry).
    """
    client = connect(settings)
    try:
        pending = pending_migrations(client, settings.clickhouse_ddl_dir)
    except ServerException as exc:
        raise permanent_error(exc, settings.clickhouse_url) or ClickHouseUnavailable(
            server_message(exc)
        ) from exc
    finally:
        client.disconnect()
    if pending:
        raise ConfigError(
            f"the ClickHouse schema is behind ({', '.join(pending)} not applied): "
            "run `promo migrate`"
        )


def read_migrations(ddl_dir: Path) -> list[Migration]:
    """The ``NNNN_name.sql`` files of ``ddl_dir`` in version order (other ``.sql`` names are
    refused, so that a misnamed migration is not silently skipped)."""
    if not ddl_dir.is_dir():
        raise ConfigError(f"PROMO_CLICKHOUSE_DDL_DIR: {ddl_dir} is not a folder")
    migrations: list[Migration] = []
    for path in sorted(ddl_dir.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        data = path.read_bytes()
        migrations.append(
            Migration(int(match[1]), path.name, data.decode(), hashlib.sha256(data).hexdigest())
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{ddl_dir}: two migration files share a version number")
    return migrations


#: Applied migrations edited on purpose, by version: the sha256 of the earlier text. 0002 and
#: 0003 gained aliases on their joined subqueries, which current ClickHouse requires (18.16
#: accepted them without); on 18.16 both texts give the same views, so a database that applied
#: the earlier text is up to date and only its record is renewed.
AMENDED = {
    2: frozenset({"de34471dab8732609f3c47cad18a900ec056292d330d62a7d38de6b3058cfdc6"}),
    3: frozenset({"f5f0132fbfe36a9b79ffa3e84bdde35a52373b477bd284bd7c511d3c8b034b78"}),
    # 0007 first restated every column of `events`; it now copies them (`AS events`): the
    # same table either way.
    7: frozenset({"48e208b9557f674d0df007ee91401b19a45ec30a1abafb0cf02fb92a2c0b5060"}),
}


def apply_migrations(client: Client, ddl_dir: Path) -> list[str]:
    """Apply the migrations of ``ddl_dir`` not yet recorded; return their file names.

    Refuses (``MigrationError``) before applying anything if an applied file was edited,
    unless the edit is a listed amendment (``AMENDED``), whose record is then renewed.
    Versions recorded as applied but absent from ``ddl_dir`` (an older checkout) are left alone.
    """
    migrations = read_migrations(ddl_dir)
    client.execute(_MIGRATIONS_TABLE)
    applied = {
        version: (name, checksum)
        for version, name, checksum in client.execute(
            "SELECT version, name, checksum FROM schema_migrations FINAL"
        )
    }
    amended = []
    for m in migrations:
        if m.version in applied and applied[m.version] != (m.name, m.checksum):
            name, checksum = applied[m.version]
            if name == m.name and checksum in AMENDED.get(m.version, ()):
                amended.append(m)
                continue
            raise MigrationError(
                f"migration {m.version:04d} was applied as {name} (sha256 {checksum[:12]}) but "
                f"{ddl_dir / m.name} now has sha256 {m.checksum[:12]}: never edit an applied "
                "migration, add a new numbered file instead"
            )
    for m in amended:
        client.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES",
            [(m.version, m.name, m.checksum, int(time.time()))],
        )
    done: list[str] = []
    for m in migrations:
        if m.version in applied:
            continue
        for i, statement in enumerate(m.statements(), start=1):
            try:
                client.execute(statement)
            except Exception as exc:
                # The server's message ends in a long stack trace: the first lines say it all.
                message = str(exc).split("Stack trace")[0].strip()
                raise MigrationError(f"{m.name}, statement {i}: {message}") from exc
        client.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES",
            [(m.version, m.name, m.checksum, int(time.time()))],
        )
        done.append(m.name)
    return done


def query(client: Client, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of ``sql``, each as {column name: value}."""
    rows, columns = client.execute(sql, params, with_column_types=True)
    names = [name for name, _ in columns]
    return [dict(zip(names, row, strict=True)) for row in rows]


def insert(
    client: Client, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> int:
    """Insert one batch; rows travel as the query's parameter, never inlined in the SQL.

    Returns the number of rows written. Any failure (server, network, a value of the wrong
    type) raises ``SinkError`` naming the table; the caller keeps the batch and retries, and
    must not commit the Kafka offsets of these rows.
    """
    if not rows:
        return 0
    column_list = ", ".join(f"`{c}`" for c in columns)  # `partition`, `offset` are keywords
    try:
        written = client.execute(f"INSERT INTO {table} ({column_list}) VALUES", rows)
    except Exception as exc:
        # The connection may be mid-packet; the next execute reconnects from scratch.
        client.disconnect()
        where = f"clickhouse://{client.connection.user}@{client.connection.host}"
        fatal = permanent_error(exc, where)
        if fatal:
            raise fatal from exc
        if isinstance(exc, TypeError | ValueError | OverflowError | struct.error) or (
            isinstance(exc, DriverError) and getattr(exc, "code", None) in _REJECTED_ROWS
        ):
            raise RowsRejected(
                f"{table} refused {len(rows)} rows: {server_message(exc) or repr(exc)}"
            ) from exc
        raise SinkError(
            f"insert of {len(rows)} rows into {table} failed: {server_message(exc) or repr(exc)}"
        ) from exc
    return int(written) if written is not None else len(rows)

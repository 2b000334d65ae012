"""The ClickHouse DDL on a real server: migrations, row layout, and at-least-once duplicates."""

from __future__ import annotations

import hashlib
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from clickhouse_driver import Client

from promo.clickhouse import AMENDED, MigrationError, apply_migrations, connect, insert
from promo.report import build_report
from promo.settings import Settings
from schemas.dead_letters import DeadLetter, RejectReason
from schemas.decisions import Decision
from schemas.events import ClickEvent, EventType, LineItem
from schemas.outcomes import Outcome, OutcomeType
from streams.errors import ConfigError, SinkError
from streams.sink_rows import (
    DEAD_LETTER_COLUMNS,
    DECISION_COLUMNS,
    EVENT_COLUMNS,
    OUTCOME_COLUMNS,
    SUPPRESSION_COLUMNS,
    dead_letter_row,
    decision_row,
    event_row,
    outcome_row,
)

DDL_DIR = Path(__file__).resolve().parents[2] / "deploy" / "clickhouse"
TS = 1_700_000_000_250  # 2023-11-14 22:13:20.250 UTC
SINK_TABLES = ("events", "decisions", "outcomes", "dead_letters")
VIEWS = (
    "v_decision_outcomes",
    "v_treatment_vs_control",
    "v_by_offer",
    "v_by_segment",
    "v_by_policy_version",
    "v_by_day",
    "v_user_outcomes",
    "v_users_treatment_vs_control",
)


def test_migrations_apply_once(clickhouse_client: Client) -> None:
    files = sorted(p.name for p in DDL_DIR.glob("*.sql"))
    assert apply_migrations(clickhouse_client, DDL_DIR) == files
    assert apply_migrations(clickhouse_client, DDL_DIR) == []

    recorded = clickhouse_client.execute(
        "SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version"
    )
    assert [name for _, name, _ in recorded] == files
    for version, name, checksum in recorded:
        assert version == int(name[:4])
        assert checksum == hashlib.sha256((DDL_DIR / name).read_bytes()).hexdigest()
    tables = {name for (name,) in clickhouse_client.execute("SHOW TABLES")}
    assert {
        *SINK_TABLES,
        "suppressions",
        "sim_truth",
        "sim_runs",
        "schema_migrations",
        *VIEWS,
    } <= tables


def test_an_edited_applied_migration_is_refused(clickhouse_client: Client, tmp_path: Path) -> None:
    ddl = tmp_path / "ddl"
    shutil.copytree(DDL_DIR, ddl)
    apply_migrations(clickhouse_client, ddl)
    with (ddl / "0001_tables.sql").open("a") as f:
        f.write("-- an innocent-looking edit\n")
    (ddl / "0099_later.sql").write_text(
        "CREATE TABLE IF NOT EXISTS later (x UInt8) ENGINE = Log\n;\n"
    )

    with pytest.raises(MigrationError, match=r"0001_tables\.sql.*never edit an applied migration"):
        apply_migrations(clickhouse_client, ddl)
    # Refused before anything ran: the later migration was not applied either.
    assert clickhouse_client.execute("EXISTS TABLE later") == [(0,)]


def test_a_listed_amendment_renews_the_record(clickhouse_client: Client) -> None:
    # A database that applied 0002 before its joined subqueries had aliases: same views on
    # 18.16, so only the record is renewed (any other edit is still refused, test above).
    apply_migrations(clickhouse_client, DDL_DIR)
    (old,) = AMENDED[2]
    clickhouse_client.execute(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES",
        [(2, "0002_views.sql", old, 0)],
    )
    assert apply_migrations(clickhouse_client, DDL_DIR) == []
    [(checksum,)] = clickhouse_client.execute(
        "SELECT checksum FROM schema_migrations FINAL WHERE version = 2"
    )
    assert checksum == hashlib.sha256((DDL_DIR / "0002_views.sql").read_bytes()).hexdigest()


def test_a_new_migration_is_applied_alone(clickhouse_client: Client, tmp_path: Path) -> None:
    ddl = tmp_path / "ddl"
    shutil.copytree(DDL_DIR, ddl)
    apply_migrations(clickhouse_client, ddl)
    (ddl / "0099_later.sql").write_text(
        "-- a comment line\nCREATE TABLE IF NOT EXISTS later (x UInt8) ENGINE = Log\n;\n"
        "CREATE TABLE IF NOT EXISTS later2 (x UInt8) ENGINE = Log;\n"
    )
    assert apply_migrations(clickhouse_client, ddl) == ["0099_later.sql"]
    assert clickhouse_client.execute("EXISTS TABLE later2") == [(1,)]


def test_connect_creates_the_database(clickhouse_url: str, unique_name: str) -> None:
    database = f"promo_test_connect_{unique_name}"
    url = urlunsplit(urlsplit(clickhouse_url)._replace(path=f"/{database}"))
    client = connect(Settings(clickhouse_url=url))
    try:
        assert client.execute("SELECT currentDatabase()") == [(database,)]
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        client.disconnect()


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("events", EVENT_COLUMNS),
        ("decisions", DECISION_COLUMNS),
        ("outcomes", OUTCOME_COLUMNS),
        ("dead_letters", DEAD_LETTER_COLUMNS),
        ("suppressions", SUPPRESSION_COLUMNS),
    ],
)
def test_tables_have_the_sink_columns(
    migrated: Client, table: str, columns: tuple[str, ...]
) -> None:
    names = migrated.execute(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = %(t)s",
        {"t": table},
    )
    assert tuple(name for (name,) in names) == columns


def test_rows_round_trip_with_exact_times(migrated: Client) -> None:
    event = ClickEvent(
        "e1",
        "u1",
        TS,
        EventType.PURCHASE,
        order_id="o1",
        order_total=18.0,
        items=(LineItem("i1", 10.0, 2, "shoes"),),
    )
    insert(migrated, "events", EVENT_COLUMNS, [event_row(event, 2, 41)])
    letter = DeadLetter("clickstream", 1, 9, None, RejectReason.INVALID_JSON, "x", "eyI=", None, TS)
    insert(migrated, "dead_letters", DEAD_LETTER_COLUMNS, [dead_letter_row(letter)])

    (row,) = migrated.execute(
        "SELECT ts, ts_ms, toYYYYMM(ts), price, order_total, item_ids, item_quantities, "
        "kafka_offset FROM events"
    )
    assert row[0].astimezone(UTC) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert row[1:] == (TS, 202311, None, 18.0, ["i1"], [2], 41)
    (letter_row,) = migrated.execute(
        "SELECT key, raw_text, message_ts_ms, `offset` FROM dead_letters"
    )
    assert letter_row == (None, None, TS, 9)


def test_insert_failure_names_the_table(migrated: Client) -> None:
    # A missing table is no outage: a configuration error, naming the cure and the table.
    with pytest.raises(ConfigError, match=r"promo migrate.*no_such_table"):
        insert(migrated, "no_such_table", ("a",), [(1,)])
    with pytest.raises(SinkError, match="outcomes"):
        insert(migrated, "outcomes", OUTCOME_COLUMNS, [("not a row",) * len(OUTCOME_COLUMNS)])
    assert migrated.execute("SELECT 1") == [(1,)]  # the client is usable again
    assert insert(migrated, "outcomes", OUTCOME_COLUMNS, []) == 0


# --- at-least-once: a redelivered batch must not count twice -------------------------------------


def _decision(decision_id: str, user: str, control: bool, offer: str, segment: int) -> Decision:
    return Decision(
        decision_id=decision_id,
        user_id=user,
        ts=TS,
        trigger_event_id=f"ev-{user}",
        trigger="view",
        segment=segment,
        control=control,
        chosen_offer="none" if control else offer,
        policy_offer=offer,
        propensity=1.0 if control else 0.9,
        scores={"none": 0.0, offer: 1.0},
        purchase_probs={"none": 0.1, offer: 0.2},
        features=(0.5, 1.0),
        expected_order_value=80.0,
        offer_id=None if control else f"of-{user}",
        expires_at=TS + 172_800_000,
        policy_version="greedy-profit-v1",
        model_version=1,
    )


def _outcome(
    decision: Decision, kind: OutcomeType, source: str, total: float = 0.0, discount: float = 0.0
) -> Outcome:
    return Outcome(
        outcome_id=f"{decision.decision_id}:{kind.value}:{source}",
        decision_id=decision.decision_id,
        user_id=decision.user_id,
        ts=TS + 60_000,
        type=kind,
        source_event_id=source,
        offer_code=decision.chosen_offer,
        control=decision.control,
        order_total=total,
        discount=discount,
    )


def _insert_batch(client: Client) -> None:
    treated = _decision("de-" + "1" * 24, "u1", control=False, offer="pct10", segment=1)
    held_out = _decision("de-" + "2" * 24, "u2", control=True, offer="pct10", segment=1)
    outcomes = [
        _outcome(treated, OutcomeType.SHOWN, "e-shown"),
        _outcome(treated, OutcomeType.CLICKED, "e-clicked"),
        _outcome(treated, OutcomeType.PURCHASE, "e-buy", 100.0, 10.0),
        # Repeats the purchase's total and discount: must not double them either.
        _outcome(treated, OutcomeType.REDEEMED, "e-buy", 100.0, 10.0),
        _outcome(held_out, OutcomeType.PURCHASE, "e-buy2", 50.0),
    ]
    events = [
        ClickEvent("e-view", "u1", TS, EventType.VIEW, item_id="i", category="c", price=9.0),
        ClickEvent("e-buy", "u1", TS + 60_000, EventType.PURCHASE, order_id="o", order_total=100.0),
        ClickEvent("e-buy2", "u2", TS + 60_000, EventType.PURCHASE, order_id="p", order_total=50.0),
    ]
    letters = [
        DeadLetter("clickstream", 0, n, "u9", RejectReason.MISSING_FIELD, "ts", "e30=", "{}", TS)
        for n in (5, 6)
    ]
    insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in (treated, held_out)])
    insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in outcomes])
    insert(client, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(events)])
    insert(client, "dead_letters", DEAD_LETTER_COLUMNS, [dead_letter_row(x) for x in letters])


def _snapshot(client: Client) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        view: sorted(client.execute(f"SELECT * FROM {view}"), key=repr) for view in VIEWS
    }
    for table in SINK_TABLES:
        snapshot[table] = client.execute(f"SELECT count() FROM {table} FINAL")[0][0]
    return snapshot


def test_redelivered_rows_never_count_twice(migrated: Client) -> None:
    for table in SINK_TABLES:
        migrated.execute(f"SYSTEM STOP MERGES {table}")  # keep the copies apart, as before a merge
    _insert_batch(migrated)
    _insert_batch(migrated)  # the redelivery
    raw = {t: migrated.execute(f"SELECT count() FROM {t}")[0][0] for t in SINK_TABLES}
    assert raw == {"events": 6, "decisions": 4, "outcomes": 10, "dead_letters": 4}

    before_merge = _snapshot(migrated)
    assert {t: before_merge[t] for t in SINK_TABLES} == {
        "events": 3,
        "decisions": 2,
        "outcomes": 5,
        "dead_letters": 2,
    }
    per_decision = migrated.execute(
        "SELECT arm, converted, redeemed, shown, clicked, purchases, revenue, discount "
        "FROM v_decision_outcomes ORDER BY arm"
    )
    assert per_decision == [
        ("control", 1, 0, 0, 0, 1, 50.0, 0.0),
        ("treatment", 1, 1, 1, 1, 1, 100.0, 10.0),
    ]
    per_user = migrated.execute(
        "SELECT arm, decisions, offers, purchases, converted, revenue, discount "
        "FROM v_user_outcomes ORDER BY arm"
    )
    assert per_user == [
        ("control", 1, 0, 1, 1, 50.0, 0.0),
        ("treatment", 1, 1, 1, 1, 100.0, 10.0),
    ]
    arms = migrated.execute(
        "SELECT arm, decisions, users, conversions, sum_revenue, sum_revenue_sq, sum_discount, "
        "sum_discount_sq, sum_revenue_discount FROM v_treatment_vs_control ORDER BY arm"
    )
    assert arms == [
        ("control", 1, 1, 1, 50.0, 2500.0, 0.0, 0.0, 0.0),
        ("treatment", 1, 1, 1, 100.0, 10_000.0, 10.0, 100.0, 1000.0),
    ]
    for view in ("v_by_offer", "v_by_segment", "v_by_policy_version", "v_by_day"):
        counts = migrated.execute(f"SELECT arm, decisions, conversions FROM {view} ORDER BY arm")
        assert counts == [("control", 1, 1), ("treatment", 1, 1)], view

    for table in SINK_TABLES:
        migrated.execute(f"SYSTEM START MERGES {table}")
        migrated.execute(f"OPTIMIZE TABLE {table} FINAL")
    assert {t: migrated.execute(f"SELECT count() FROM {t}")[0][0] for t in SINK_TABLES} == {
        t: before_merge[t] for t in SINK_TABLES
    }
    assert _snapshot(migrated) == before_merge


def test_per_user_view_counts_purchases_from_the_first_decision_on(migrated: Client) -> None:
    decision = _decision("de-" + "3" * 24, "u3", control=False, offer="pct10", segment=0)
    insert(migrated, "decisions", DECISION_COLUMNS, [decision_row(decision)])
    purchases = [
        ClickEvent(
            "e-before", "u3", TS - 60_000, EventType.PURCHASE, order_id="a", order_total=7.0
        ),
        ClickEvent(
            "e-after", "u3", TS + 60_000, EventType.PURCHASE, order_id="b", order_total=30.0
        ),
        ClickEvent(
            "e-later", "u3", TS + 3_600_000, EventType.PURCHASE, order_id="c", order_total=12.0
        ),
    ]
    insert(migrated, "events", EVENT_COLUMNS, [event_row(e, 0, i) for i, e in enumerate(purchases)])
    rows = migrated.execute(
        "SELECT purchases, revenue, converted FROM v_user_outcomes WHERE user_id = 'u3'"
    )
    assert rows == [(2, 42.0, 1)]


def test_an_event_resent_with_another_ts_is_one_row(migrated: Client) -> None:
    """A producer that regenerates ts on retry: same event_id, two ts, one row."""
    event = ClickEvent("e-resent", "u1", TS, EventType.VIEW, item_id="i", category="c", price=1.0)
    resent = ClickEvent(
        "e-resent", "u1", TS + 5_000, EventType.VIEW, item_id="i", category="c", price=1.0
    )
    insert(migrated, "events", EVENT_COLUMNS, [event_row(event, 0, 1)])
    insert(migrated, "events", EVENT_COLUMNS, [event_row(resent, 0, 2)])
    assert migrated.execute("SELECT count() FROM events FINAL WHERE event_id = 'e-resent'") == [
        (1,)
    ]


def test_the_analyst_reads_everything_and_writes_nothing(
    migrated: Client, clickhouse_url: str
) -> None:
    """Least privilege on the local server: `promo_analyst` is read-only (users.xml)."""
    database = migrated.execute("SELECT currentDatabase()")[0][0]
    parts = urlsplit(clickhouse_url)
    netloc = f"promo_analyst@{parts.hostname}:{parts.port}"
    analyst = connect(
        Settings(
            clickhouse_url=urlunsplit(parts._replace(netloc=netloc, path=f"/{database}")),
            clickhouse_password="promo-analyst-local",
        )
    )
    assert build_report(analyst, gross_margin=0.3).startswith("promo-stream report")
    event = ClickEvent("e-1", "u1", TS, EventType.VIEW, item_id="i", category="c", price=1.0)
    with pytest.raises(ConfigError, match="read-only"):
        insert(analyst, "events", EVENT_COLUMNS, [event_row(event, 0, 1)])

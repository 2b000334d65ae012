"""Sinks: events, decisions, outcomes, suppressions and dead letters into ClickHouse.

The sinks live apart from the hot path: one plain Kafka consumer in its own consumer group
(``<app id>-sinks``), run as a task of each worker, so the group spreads the topics'
partitions over the workers. When ClickHouse is down, only this consumer waits: it retries
the batch in hand with capped back-off and reads nothing further, Kafka holds the backlog,
and decisions and offers keep flowing (a Faust agent on the clickstream would have stalled
the hot path's shared consumer within seconds). Memory stays bounded: one batch in hand,
plus the consumer's fetch buffer.

A batch is at most ``sink_batch_size`` records or ``sink_flush_seconds`` of waiting; each
table's rows go in one insert, and only when every insert succeeded are the batch's offsets
committed. A crash or a stop in between leaves them uncommitted: the next owner of the
partitions writes them again, and the ReplacingMergeTree tables (keyed by each record's id)
count them once. Configuration errors (credentials, schema behind) are not retried: the
worker stops, naming the setting.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol, TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from clickhouse_driver import Client

from agents.app import Promo
from agents.metrics import SinkMetrics
from agents.sink_watch import AssignmentLog, SinkWatchdog
from promo.clickhouse import RowsRejected, connect, insert
from promo.settings import Settings
from schemas.codec import decode
from schemas.dead_letters import DeadLetter, RejectReason
from schemas.decisions import Decision
from schemas.outcomes import Outcome
from schemas.suppressions import Suppression
from streams import sink_rows
from streams.batch import RawMessage, dead_letter
from streams.errors import ConfigError, PromoError
from streams.validation import Rejected, validate_event

log = logging.getLogger(__name__)

Row = Sequence[Any]
Record: TypeAlias = ConsumerRecord[bytes, bytes]
MAX_BACKOFF_SECONDS = 30.0
#: A rebalance lasting longer than this many session timeouts is taken for one that will
#: never end (its dead members are evicted after one).
REBALANCE_SESSIONS = 3
REJECTED = RejectReason.REJECTED_BY_CLICKHOUSE
# Current ClickHouse refuses an insert that touches more than 100 partitions
# (max_partitions_per_insert_block), and the tables are partitioned by month of a time that
# comes from input (dead letters: any producer's Kafka timestamp). Each insert therefore
# holds rows of one 30-day span, which touches at most 3 monthly partitions.
INSERT_SPAN_SECONDS = 30 * 86_400
DEAD_LETTER_MONTH = sink_rows.DEAD_LETTER_COLUMNS.index("message_ts")


@dataclass(frozen=True)
class Sink:
    """One topic into one table."""

    topic: str
    table: str
    columns: Sequence[str]
    to_row: Callable[[Record], Row | None]
    month_column: str = "ts"  # the DateTime the table is partitioned by (toYYYYMM)


def pseudonymiser(key: bytes) -> Callable[[str], str]:
    """User id -> ``p-`` and 24 hex digits of HMAC-SHA256 under ``key``: stable, so every
    table and view still joins on it, and not reversible without the key.

    >>> pseudonymiser(b"k")("u1") == pseudonymiser(b"k")("u1") != pseudonymiser(b"j")("u1")
    True
    """

    def pseudonym(user_id: str) -> str:
        return "p-" + hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:24]

    return pseudonym


def _pseudonymised(sink: Sink, pseudonym: Callable[[str], str]) -> Sink:
    """The same sink, its user id column (``key`` of dead letters) replaced by a pseudonym."""
    column = "user_id" if "user_id" in sink.columns else "key"
    at = list(sink.columns).index(column)

    def to_row(r: Record) -> Row | None:
        row = sink.to_row(r)
        if row is None or row[at] is None:
            return row
        return (*row[:at], pseudonym(row[at]), *row[at + 1 :])

    return replace(sink, to_row=to_row)


def sinks(s: Settings) -> list[Sink]:
    """Every topic -> table of the sinks (user ids pseudonymised if the settings say so)."""
    plain = _plain_sinks(s)
    if s.pseudonymise_key is None:
        return plain
    pseudonym = pseudonymiser(s.pseudonymise_key.get_secret_value().encode())
    return [_pseudonymised(sink, pseudonym) for sink in plain]


def _plain_sinks(s: Settings) -> list[Sink]:
    skew_ms = s.max_future_skew_seconds * 1000
    max_age_ms = s.max_event_age_days * 86_400_000

    def event_row(r: Record) -> Row | None:
        # The hot path's checks, with this sink's clock: it reads after the hot path, so it
        # can only be more lenient, and only about events that were ahead of both clocks.
        checked = validate_event(
            r.value or b"",
            key=r.key,
            message_ts=r.timestamp,
            max_bytes=s.max_message_bytes,
            max_future_skew_ms=skew_ms,
            now_ms=int(time.time() * 1000),
            max_age_ms=max_age_ms,
        )
        return (
            None
            if isinstance(checked, Rejected)
            else sink_rows.event_row(checked, r.partition, r.offset)
        )

    def record(kind: type, to_row: Callable[[Any], Row]) -> Callable[[Record], Row | None]:
        def row(r: Record) -> Row | None:
            try:
                return to_row(decode(kind, r.value or b""))
            except (ValueError, TypeError, KeyError) as exc:  # our own topic: a bug, not input
                log.error(
                    "unreadable %s at %s:%s: %r",
                    kind.__name__,
                    r.topic,
                    r.offset,
                    exc,
                    extra={"topic": r.topic, "offset": r.offset},
                )
                return None

        return row

    return [
        Sink(s.topic_clickstream, "events", sink_rows.EVENT_COLUMNS, event_row),
        Sink(
            s.topic_decisions,
            "decisions",
            sink_rows.DECISION_COLUMNS,
            record(Decision, sink_rows.decision_row),
        ),
        Sink(
            s.topic_outcomes,
            "outcomes",
            sink_rows.OUTCOME_COLUMNS,
            record(Outcome, sink_rows.outcome_row),
        ),
        Sink(
            s.topic_suppressions,
            "suppressions",
            sink_rows.SUPPRESSION_COLUMNS,
            record(Suppression, sink_rows.suppression_row),
        ),
        Sink(
            s.topic_dead_letters,
            "dead_letters",
            sink_rows.DEAD_LETTER_COLUMNS,
            record(DeadLetter, sink_rows.dead_letter_row),
            month_column="message_ts",
        ),
    ]


class Consumer(Protocol):
    """What the sink loop needs of a Kafka consumer (aiokafka's)."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]: ...

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None: ...


Writer = Callable[[str, Sequence[str], list[Row]], None]


async def take_batch(
    consumer: Consumer, max_records: int, max_seconds: float
) -> dict[TopicPartition, list[Record]]:
    """Up to ``max_records`` records, waiting at most ``max_seconds`` for them to come."""
    batch: dict[TopicPartition, list[Record]] = defaultdict(list)
    taken, deadline = 0, time.monotonic() + max_seconds
    while taken < max_records:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        more = await consumer.getmany(timeout_ms=int(left * 1000), max_records=max_records - taken)
        for tp, records in more.items():
            batch[tp] += records
            taken += len(records)
    return batch


async def sink_batch(
    consumer: Consumer,
    batch: dict[TopicPartition, list[Record]],
    by_topic: dict[str, Sink],
    write: Writer,
    *,
    commit_within: float | None = None,
) -> int:
    """Write a batch's rows, table by table, then commit its offsets; the rows written.
    ``TimeoutError`` when the commit takes longer than ``commit_within`` seconds: the rows
    are written, the offsets not (a new consumer reads the batch again; rows are stored once).

    Rows ClickHouse refuses as such (a value out of range...) are isolated by halving the
    insert and go to ``dead_letters`` with the reason, so one bad row cannot stop a table.
    """
    rows: dict[tuple[str, int], list[tuple[Row, Record]]] = defaultdict(list)
    for tp, records in batch.items():
        sink = by_topic[tp.topic]
        at = list(sink.columns).index(sink.month_column)
        for r in records:
            if (row := sink.to_row(r)) is not None:
                rows[sink.table, row[at] // INSERT_SPAN_SECONDS].append((row, r))
    columns = {sink.table: sink.columns for sink in by_topic.values()}
    written, refused = 0, []
    for (table, _), pairs in rows.items():
        refused += await _write_isolating(write, table, columns[table], pairs)
        written += len(pairs)
    if refused:
        log.error("ClickHouse refused %d rows; they are in dead_letters", len(refused))
        by_span: dict[int, list[Row]] = defaultdict(list)
        for r, why in refused:
            letter = sink_rows.dead_letter_row(dead_letter(Rejected(REJECTED, why), _raw(r)))
            by_span[letter[DEAD_LETTER_MONTH] // INSERT_SPAN_SECONDS].append(letter)
        for letters in by_span.values():
            await write_until_done(
                partial(write, "dead_letters", sink_rows.DEAD_LETTER_COLUMNS, letters)
            )
    try:
        await asyncio.wait_for(
            consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()}),
            commit_within,
        )
    except (CommitFailedError, IllegalStateError) as exc:  # a rebalance took the partitions
        # (before the commit was sent, aiokafka refuses it as not assigned): their owner
        # writes the batch again. Raised, it crashed the whole worker (make chaos).
        log.warning("sink offsets not committed (%s): the batch will be written again", exc)
    return written - len(refused)


async def _write_isolating(
    write: Writer, table: str, columns: Sequence[str], pairs: list[tuple[Row, Record]]
) -> list[tuple[Record, str]]:
    """Insert the rows; the records of rows ClickHouse refused, with why (found by halving)."""
    try:
        await write_until_done(partial(write, table, columns, [row for row, _ in pairs]))
        return []
    except RowsRejected as exc:
        if len(pairs) == 1:
            return [(pairs[0][1], str(exc))]
    half = len(pairs) // 2
    return [
        *await _write_isolating(write, table, columns, pairs[:half]),
        *await _write_isolating(write, table, columns, pairs[half:]),
    ]


def _raw(r: Record) -> RawMessage:
    return RawMessage(r.value or b"", r.key, r.timestamp, r.topic, r.partition, r.offset)


async def write_until_done(write: Callable[[], None]) -> None:
    """Retry with back-off until ClickHouse takes the rows; never drop them. A
    ``ConfigError`` (bad credentials, a schema behind) and ``RowsRejected`` (the rows
    themselves) are not retried: they propagate."""
    loop = asyncio.get_running_loop()
    backoff = 0.5
    while True:
        try:
            # clickhouse-driver blocks: keep the event loop (the hot path) free.
            await loop.run_in_executor(None, write)
            return
        except (ConfigError, RowsRejected):
            raise
        except PromoError as exc:
            log.warning("%s; retrying in %.1f s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def register(promo: Promo) -> None:
    """The sinks as a task of the worker, unless they run apart (``promo sinks``)."""
    if not promo.settings.sinks_in_worker:
        return

    @promo.app.task  # type: ignore[untyped-decorator]
    async def sink_to_clickhouse() -> None:
        try:
            await sink_forever(promo.settings, promo.metrics.sinks)
        except ConfigError as exc:
            # No retry cures a bad setting: stop the worker, naming it. The batch stays
            # uncommitted, so the next worker writes it.
            log.error("configuration error: %s; stopping the worker", exc)
            await promo.app.crash(exc)


async def sink_forever(s: Settings, metrics: SinkMetrics) -> None:
    """Every sink topic into ClickHouse, for good (a ``ConfigError`` ends it)."""
    by_topic = {sink.topic: sink for sink in sinks(s)}
    watchdog = SinkWatchdog(by_topic, metrics.stalls)
    await run_sinks(partial(sink_consumer, s), by_topic, clickhouse_writer(s, metrics), watchdog, s)


def clickhouse_writer(s: Settings, metrics: SinkMetrics) -> Writer:
    """Inserts over one connection, made on first use and again after a failure."""
    client: list[Client] = []

    def write(table: str, columns: Sequence[str], rows: list[Row]) -> None:
        started = time.monotonic()
        try:
            if not client:
                client.append(connect(s))
            insert(client[0], table, columns, rows)
        except PromoError as exc:  # RowsRejected and ConfigError included
            kind = (
                "rejected"
                if isinstance(exc, RowsRejected)
                else "configuration"
                if isinstance(exc, ConfigError)
                else "outage"
            )
            metrics.failures.labels(table, kind).inc()
            client.clear()
            raise
        metrics.rows.labels(table).observe(len(rows))
        metrics.seconds.labels(table).observe(time.monotonic() - started)

    return write


def sink_consumer(s: Settings) -> AIOKafkaConsumer:
    """A consumer of the sinks' group (not started): offsets committed by the loop only."""
    return AIOKafkaConsumer(
        bootstrap_servers=s.bootstrap_servers,
        group_id=f"{s.app_id}-sinks",
        client_id=f"{s.app_id}-sinks",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(s.broker_session_timeout * 1000),
        heartbeat_interval_ms=int(s.broker_heartbeat_interval * 1000),
        **s.kafka_options(),
    )


async def run_sinks(
    new_consumer: Callable[[], AIOKafkaConsumer],
    by_topic: dict[str, Sink],
    write: Writer,
    watchdog: SinkWatchdog,
    s: Settings,
) -> None:
    """Sink batches for good; a consumer the watchdog finds stalled beyond a resume is
    stopped (leaving the group) and replaced by a new one, which joins it again. That is safe
    between batches: the last one is committed, or its commit failed and its partitions'
    next holder writes it again."""
    while True:
        watchdog.reset()
        consumer = new_consumer()
        consumer.subscribe(list(by_topic), listener=AssignmentLog(watchdog.reset))
        await consumer.start()
        try:
            await _sink_until_stalled(consumer, by_topic, write, watchdog, s)
        finally:
            await consumer.stop()


async def _sink_until_stalled(
    consumer: Consumer,
    by_topic: dict[str, Sink],
    write: Writer,
    watchdog: SinkWatchdog,
    s: Settings,
) -> None:
    # aiokafka waits without a timeout of its own for a rebalance to end (getmany) and for a
    # group coordinator that answers (commit, committed offsets: they retry for good). A
    # rebalance that never ended (Tansu, after SIGKILLed members: make chaos) held the sinks,
    # and their watchdog, there for good while decisions waited unwritten; later a commit did.
    # Longer than a rebalance may last, the consumer is replaced: the new one joins the group
    # afresh. (Writing to ClickHouse is not bounded: an outage is waited out, see sink_batch.)
    most = s.sink_flush_seconds + REBALANCE_SESSIONS * s.broker_session_timeout
    while True:
        try:
            batch = await asyncio.wait_for(
                take_batch(consumer, s.sink_batch_size, s.sink_flush_seconds), most
            )
            watchdog.delivered(batch, time.monotonic())
            if batch:
                writing = time.monotonic()
                await sink_batch(consumer, batch, by_topic, write, commit_within=most)
                watchdog.away(time.monotonic() - writing)
            now = time.monotonic()
            if watchdog.due(now) and await asyncio.wait_for(watchdog.look(consumer, now), most):
                return
        except TimeoutError:
            watchdog.stalls.labels("rejoin").inc()
            log.error(
                "sinks: the broker's group did not answer within %.0f s (no end to a "
                "rebalance, or no coordinator); a new consumer rejoins the group",
                most,
            )
            return

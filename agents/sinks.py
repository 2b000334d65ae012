"""Sink agents: events, decisions, outcomes, suppressions and dead letters into ClickHouse.

Each sink buffers up to ``sink_batch_size`` messages or ``sink_flush_seconds``, inserts them in
one statement, and only then lets Faust acknowledge (and later commit) their offsets. When
ClickHouse is down the sink retries with back-off and does not read further: the topic holds
the backlog, nothing is dropped. Tables are ReplacingMergeTree keyed by each record's id, so
a batch written twice (a crash between insert and commit) is counted once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from clickhouse_driver import Client
from faust.types import EventT, StreamT, TopicT

from agents.app import Promo
from promo.clickhouse import connect, insert
from schemas.codec import decode
from schemas.dead_letters import DeadLetter
from schemas.decisions import Decision
from schemas.outcomes import Outcome
from schemas.suppressions import Suppression
from streams import sink_rows
from streams.errors import ConfigError, PromoError
from streams.validation import Rejected, validate_event

log = logging.getLogger(__name__)

Row = Sequence[Any]
MAX_BACKOFF_SECONDS = 30.0


def register(promo: Promo) -> None:
    s = promo.settings
    skew_ms = s.max_future_skew_seconds * 1000
    max_age_ms = s.max_event_age_days * 86_400_000

    def event_rows(events: list[EventT[bytes]]) -> list[Row]:
        rows: list[Row] = []
        # The hot path's checks, with this sink's clock: it reads after the hot path, so it
        # can only be more lenient, and only about events that were ahead of both clocks.
        now_ms = int(time.time() * 1000)
        for e in events:
            m = e.message
            checked = validate_event(
                m.value or b"",
                key=m.key,
                message_ts=int(m.timestamp * 1000),
                max_bytes=s.max_message_bytes,
                max_future_skew_ms=skew_ms,
                now_ms=now_ms,
                max_age_ms=max_age_ms,
            )
            if not isinstance(checked, Rejected):
                rows.append(sink_rows.event_row(checked, m.partition, m.offset))
        return rows

    def records(
        kind: type, to_row: Callable[[Any], Row]
    ) -> Callable[[list[EventT[bytes]]], list[Row]]:
        def rows(events: list[EventT[bytes]]) -> list[Row]:
            out = []
            for e in events:
                try:
                    out.append(to_row(decode(kind, e.message.value or b"")))
                except (ValueError, TypeError, KeyError) as exc:  # our own topic: a bug, not input
                    log.error(
                        "unreadable %s at %s:%s: %r",
                        kind.__name__,
                        e.message.tp,
                        e.message.offset,
                        exc,
                    )
            return out

        return rows

    t = promo.topics
    _sink(promo, t.clickstream, "events", sink_rows.EVENT_COLUMNS, event_rows)
    _sink(
        promo,
        t.decisions,
        "decisions",
        sink_rows.DECISION_COLUMNS,
        records(Decision, sink_rows.decision_row),
    )
    _sink(
        promo,
        t.outcomes,
        "outcomes",
        sink_rows.OUTCOME_COLUMNS,
        records(Outcome, sink_rows.outcome_row),
    )
    _sink(
        promo,
        t.suppressions,
        "suppressions",
        sink_rows.SUPPRESSION_COLUMNS,
        records(Suppression, sink_rows.suppression_row),
    )
    _sink(
        promo,
        t.dead_letters,
        "dead_letters",
        sink_rows.DEAD_LETTER_COLUMNS,
        records(DeadLetter, sink_rows.dead_letter_row),
    )


def _sink(
    promo: Promo,
    topic: TopicT,
    table: str,
    columns: Sequence[str],
    to_rows: Callable[[list[EventT[bytes]]], list[Row]],
) -> None:
    s = promo.settings
    client: list[Client] = []  # one connection per sink, made on first use

    def write(rows: list[Row]) -> None:
        if not client:
            client.append(connect(s))
        insert(client[0], table, columns, rows)

    @promo.app.agent(topic, name=f"promo.sink.{table}")
    async def sink(stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(s.sink_batch_size, within=s.sink_flush_seconds):  # type: ignore[attr-defined]
            # Faust acknowledges the batch when the loop moves on, and also when the worker stops
            # and closes the loop mid-retry: our own reference on each message keeps a batch
            # that is not written uncommitted, so the next worker writes it.
            for event in events:
                event.message.incref()
            try:
                await _write_until_done(write, to_rows(events), client)
            except ConfigError as exc:
                # No retry cures a bad setting: stop the worker, naming it. The batch stays
                # unacknowledged, so the next worker writes it.
                log.error("configuration error: %s; stopping the worker", exc)
                await promo.app.crash(exc)
                return
            for event in events:
                event.message.decref()  # written: the loop's acknowledgement is now the last


async def _write_until_done(
    write: Callable[[list[Row]], None], rows: list[Row], client: list[Client]
) -> None:
    """Retry with back-off until ClickHouse takes the batch; never drop it. A ``ConfigError``
    (bad credentials, a schema behind) is not retried: it propagates."""
    loop = asyncio.get_running_loop()
    backoff = 0.5
    while True:
        try:
            # clickhouse-driver blocks: keep the event loop (heartbeats, agents) free.
            await loop.run_in_executor(None, write, rows)
            return
        except ConfigError:
            raise
        except PromoError as exc:
            log.warning("%s; retrying in %.1f s", exc, backoff)
            client.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

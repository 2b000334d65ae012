"""A batch of raw clickstream messages through validation and the engine, pure.

Batching is what makes the per-event path cheap: each user's state is decoded once and
encoded once per batch, however many of their events the batch holds. Events are handled in
arrival order (per partition, that is the producer's order).

At-least-once delivery means a message can come twice: after a crash, the user-state
changelog may already hold messages whose offsets were never committed; and a producer may
retry an event. Each state remembers the last offset it applied and the ids of its events of
the last hour of event time (``streams.user_state.DEDUP_HORIZON_MS``), and skips both kinds
of repeat, so features and attribution see every event once.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from schemas.dead_letters import DeadLetter
from schemas.events import ClickEvent
from streams.budget import BudgetLedger
from streams.engine import DecisionEngine, EngineOutput
from streams.user_state import UserState
from streams.validation import Rejected, validate_event


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A Kafka message as it arrived, with where it came from."""

    value: bytes
    key: bytes | None
    timestamp_ms: int
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class BatchResult:
    output: EngineOutput = field(default_factory=EngineOutput)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: user id -> new state (to be saved once per batch)
    states: dict[str, UserState] = field(default_factory=dict)
    #: partition -> its budget ledger, when the engine has a daily budget (saved likewise)
    ledgers: dict[int, BudgetLedger] = field(default_factory=dict)
    events: int = 0
    #: Events processed, by type (the operators' per-type counts)
    event_types: dict[str, int] = field(default_factory=dict)
    #: Kafka timestamp (ms) of the message behind each decision, in ``output.decisions``
    #: order: where the decision latency is measured from
    decision_message_ts: list[int] = field(default_factory=list)
    #: Messages skipped because the user's state already holds them (replay after a crash,
    #: or a producer's retry of the same event id). ClickHouse stores them once anyway.
    duplicates: int = 0


#: Most bytes of a rejected message a dead letter carries: a dead letter (base64 and text
#: of these, ~40 kB at most) must always fit in a Kafka message, whatever came in. A 600 kB
#: message once became a 1.4 MB dead letter the broker refused, and the worker, replaying it
#: on every restart, never got past it.
DEAD_LETTER_PAYLOAD_BYTES = 16_384
#: Most characters of a rejected message's key kept (the key of the dead letter too).
DEAD_LETTER_KEY_CHARS = 256


def dead_letter(
    rejected: Rejected, message: RawMessage, keep_bytes: int = DEAD_LETTER_PAYLOAD_BYTES
) -> DeadLetter:
    value = message.value
    kept = value[:keep_bytes]
    truncated = len(kept) < len(value)
    key = message.key
    return DeadLetter(
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=key[: DEAD_LETTER_KEY_CHARS * 4].decode("utf-8", "replace")[:DEAD_LETTER_KEY_CHARS]
        if key is not None
        else None,
        reason=rejected.reason,
        detail=rejected.detail[:1000],
        raw_b64=base64.b64encode(kept).decode("ascii"),
        raw_text=_as_text(kept, cut=truncated),
        message_ts=message.timestamp_ms,
        raw_size=len(value),
        raw_sha256=hashlib.sha256(value).hexdigest(),
        truncated=truncated,
    )


def _as_text(data: bytes, *, cut: bool) -> str | None:
    """``data`` as text if it is UTF-8; where ``cut`` short, a character split by the cut
    is left out."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8")
        return None


def process_batch(
    engine: DecisionEngine,
    messages: Sequence[RawMessage],
    load_state: Callable[[str], UserState | None],
    *,
    max_bytes: int,
    max_future_skew_ms: int,
    now_ms: int | None = None,
    max_age_ms: int | None = None,
    load_ledger: Callable[[int], BudgetLedger | None] = lambda partition: None,
) -> BatchResult:
    """Validate every message, fold the good ones into their user's state, collect the rest.

    ``load_state`` returns the stored state of a user, or None for a new user;
    ``load_ledger`` the stored budget ledger of a partition, or None (a new one is started
    when the engine has a daily budget).
    """
    result = BatchResult()
    states, ledgers = result.states, result.ledgers
    budgeted = engine.config.daily_budget is not None
    for message in messages:
        checked = validate_event(
            message.value,
            key=message.key,
            message_ts=message.timestamp_ms,
            max_bytes=max_bytes,
            max_future_skew_ms=max_future_skew_ms,
            now_ms=now_ms,
            max_age_ms=max_age_ms,
        )
        if isinstance(checked, Rejected):
            result.dead_letters.append(dead_letter(checked, message))
            continue
        event: ClickEvent = checked
        state = states.get(event.user_id)
        if state is None:
            state = states[event.user_id] = load_state(event.user_id) or engine.new_state()
        if not state.first_time(message.partition, message.offset, event.event_id, event.ts):
            result.duplicates += 1
            continue
        ledger = None
        if budgeted:
            ledger = ledgers.get(message.partition)
            if ledger is None:
                ledger = ledgers[message.partition] = (
                    load_ledger(message.partition) or BudgetLedger()
                )
        decided = len(result.output.decisions)
        engine.handle(state, event, result.output, ledger)
        decided = len(result.output.decisions) - decided
        if decided:
            result.decision_message_ts.extend([message.timestamp_ms] * decided)
        result.events += 1
        kind = event.type.value
        result.event_types[kind] = result.event_types.get(kind, 0) + 1
    return result

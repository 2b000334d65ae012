"""A batch through validation and the engine: dead letters, and repeats skipped."""

from __future__ import annotations

import base64
import hashlib
import json

import orjson
from jsonschema import Draft202012Validator

from schemas import JSON_SCHEMA_DIR
from schemas.codec import encode
from streams.batch import (
    DEAD_LETTER_KEY_CHARS,
    DEAD_LETTER_PAYLOAD_BYTES,
    RawMessage,
    process_batch,
)
from streams.engine import DecisionEngine
from streams.user_state import DEDUP_HORIZON_MS, DEDUP_MAX_IDS, UserState
from tests.unit.conftest import make_engine

T0 = 1_700_000_000_000
DEAD_LETTER_SCHEMA = Draft202012Validator(
    json.loads((JSON_SCHEMA_DIR / "dead-letter.schema.json").read_text())
)


def message(offset: int, event_id: str, user: str = "u1", partition: int = 3) -> RawMessage:
    event = {
        "event_id": event_id,
        "user_id": user,
        "ts": T0 + offset * 1000,
        "type": "view",
        "item_id": "i",
        "category": "c",
        "price": 5.0,
    }
    return RawMessage(
        orjson.dumps(event), user.encode(), T0 + offset * 1000, "clickstream", partition, offset
    )


def run(engine: DecisionEngine, table: dict[str, bytes], messages: list[RawMessage]) -> int:
    def load(user_id: str) -> UserState | None:
        raw = table.get(user_id)
        return UserState.from_bytes(raw, engine.config.abandon_after_ms) if raw else None

    result = process_batch(engine, messages, load, max_bytes=65_536, max_future_skew_ms=300_000)
    for user_id, state in result.states.items():
        table[user_id] = state.to_bytes()
    return result.duplicates


def views(table: dict[str, bytes]) -> int:
    return UserState.from_bytes(table["u1"], 1).features.count("view", "24h")


def test_messages_replayed_after_a_crash_are_applied_once() -> None:
    engine, table = make_engine(), {}
    first = [message(i, f"e{i}") for i in range(3)]
    run(engine, table, first)
    # The state was saved but the offsets were not committed: the same messages come again.
    assert run(engine, table, [*first, message(3, "e3")]) == 3
    assert views(table) == 4


def test_a_producer_retry_with_the_same_event_id_is_applied_once() -> None:
    engine, table = make_engine(), {}
    assert run(engine, table, [message(0, "e0"), message(1, "e0"), message(2, "e1")]) == 1
    assert views(table) == 2


def test_bad_messages_become_dead_letters_and_cost_nothing_else() -> None:
    engine = make_engine()
    bad = RawMessage(b"\xff{", b"u1", T0, "clickstream", 3, 1)
    result = process_batch(
        engine,
        [message(0, "e0"), bad, message(2, "e2")],
        lambda _: None,
        max_bytes=65_536,
        max_future_skew_ms=300_000,
    )
    (letter,) = result.dead_letters
    assert (letter.reason.value, letter.partition, letter.offset) == ("invalid_json", 3, 1)
    assert base64.b64decode(letter.raw_b64) == b"\xff{" and letter.raw_text is None
    assert result.events == 2


def test_state_of_format_1_is_upgraded_on_read() -> None:
    engine, table = make_engine(), {}
    run(engine, table, [message(0, "e0")])
    fields = orjson.loads(table["u1"])
    old = orjson.dumps([1, *fields[1:6]])  # format 1: no offset nor recent event ids
    state = UserState.from_bytes(old, engine.config.abandon_after_ms)
    assert (state.offset, state.recent_events, state.features.count("view", "24h")) == (-1, [], 1)


def test_a_dead_letter_always_fits_in_a_kafka_message() -> None:
    """A 6 MB message (not JSON, not UTF-8 at the cut) with a 100 kB key: its dead letter
    carries the beginning, the size and the hash, and stays small."""
    value = b"x" * (DEAD_LETTER_PAYLOAD_BYTES - 1) + "é".encode() + b"\xff" * 6_000_000
    huge = RawMessage(value, b"k" * 100_000, T0, "clickstream", 0, 7)
    result = process_batch(
        make_engine(), [huge], lambda user_id: None, max_bytes=65_536, max_future_skew_ms=300_000
    )
    (letter,) = result.dead_letters
    assert letter.reason == "too_large" and letter.truncated
    assert base64.b64decode(letter.raw_b64) == value[:DEAD_LETTER_PAYLOAD_BYTES]
    assert letter.raw_text == "x" * (DEAD_LETTER_PAYLOAD_BYTES - 1)  # the cut "é" left out
    assert letter.raw_size == len(value)
    assert letter.raw_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.key is not None and len(letter.key) == DEAD_LETTER_KEY_CHARS
    assert len(encode(letter)) < 50_000
    DEAD_LETTER_SCHEMA.validate(orjson.loads(encode(letter)))


def test_a_small_rejected_message_travels_whole() -> None:
    bad = RawMessage(b'{"not": "an event"}', b"u1", T0, "clickstream", 0, 8)
    result = process_batch(
        make_engine(), [bad], lambda user_id: None, max_bytes=65_536, max_future_skew_ms=300_000
    )
    (letter,) = result.dead_letters
    assert not letter.truncated and letter.raw_text == '{"not": "an event"}'
    assert base64.b64decode(letter.raw_b64) == bad.value and letter.raw_size == len(bad.value)
    DEAD_LETTER_SCHEMA.validate(orjson.loads(encode(letter)))


def test_a_retry_is_recognised_across_the_whole_horizon_not_a_count() -> None:
    # 100 other events, a second apart, between an event and its retry (once: 16 at most).
    engine, table = make_engine(), {}
    events = [message(i, f"e{i}") for i in range(101)]
    retry = message(101, "e0")  # the producer resends e0 (same id, new offset)
    assert run(engine, table, [*events, retry]) == 1
    assert views(table) == 101


def test_the_horizon_is_stated_and_bounds_the_state() -> None:
    engine, table = make_engine(), {}
    hour = DEDUP_HORIZON_MS // 1000  # message() spaces offsets a second apart
    run(engine, table, [message(0, "old"), message(hour + 60, "new")])
    # "old" is more than the horizon behind the user's latest event: it is forgotten.
    assert run(engine, table, [message(hour + 61, "old")]) == 0
    state = UserState.from_bytes(table["u1"], 1)
    assert len(state.recent_events) <= 2
    run(engine, table, [message(hour + 100 + i, f"burst{i}") for i in range(300)])
    assert len(UserState.from_bytes(table["u1"], 1).recent_events) == DEDUP_MAX_IDS


def test_state_of_format_2_is_read_with_a_fresh_retry_guard() -> None:
    engine, table = make_engine(), {}
    run(engine, table, [message(0, "e0")])
    fields = orjson.loads(table["u1"])
    old = orjson.dumps([2, *fields[1:7], [123, 456]])  # format 2: CRC-32s of 16 ids
    state = UserState.from_bytes(old, engine.config.abandon_after_ms)
    assert (state.offset, state.recent_events) == (0, [])

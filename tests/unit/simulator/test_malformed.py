"""Malformed messages: each kind is really bad, and they only ever add to the good stream."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from schemas import JSON_SCHEMA_DIR
from simulator.malformed import (
    EXPECTED_OUTCOME,
    EXPECTED_REASON,
    SIMULATOR_KINDS,
    Accepted,
    MalformedInjector,
    MalformedKind,
    Message,
    flood_user,
)
from simulator.population import Population
from simulator.shop import Shop
from streams.validation import validate_event
from tests.unit.simulator.conftest import HOUR_MS, T0

VALIDATOR = Draft202012Validator(
    json.loads((JSON_SCHEMA_DIR / "clickstream-event.schema.json").read_text())
)
MAX_SKEW_MS = 300_000
#: The worker's default message size limit (PROMO_MAX_MESSAGE_BYTES).
MAX_BYTES = 65_536
#: The worker's default horizon (PROMO_MAX_EVENT_AGE_DAYS).
MAX_AGE_MS = 90 * 86_400_000


@pytest.fixture(scope="module")
def events(population: Population) -> list[dict[str, Any]]:
    return Shop(population, start_ms=T0, run_id="t", seed=1).advance(T0 + 12 * HOUR_MS)


def _violates_contract(message: Message, message_ts: int) -> bool:
    """Bad per the JSON Schema, or per the rules beside it: at most 64 KiB, key = user_id, ts
    neither ahead nor beyond the horizon behind."""
    if len(message.value or b"") > MAX_BYTES:
        return True
    try:
        data = orjson.loads(message.value or b"")
    except orjson.JSONDecodeError:
        return True
    if not VALIDATOR.is_valid(data):
        return True
    if message.timestamp_ms is not None and message.timestamp_ms > message_ts:
        return True  # stamped by a clock ahead of the producer's real time
    return bool(
        message.key != data["user_id"].encode()
        or data["ts"] > message_ts + MAX_SKEW_MS
        or data["ts"] < message_ts - MAX_AGE_MS
    )


def test_good_events_pass_through_whole_and_in_order(events: list[dict[str, Any]]) -> None:
    messages = MalformedInjector(0.2, "t", seed=1).messages(events)
    good = [m for m in messages if m.malformed is None]
    assert [orjson.loads(m.value) for m in good] == events
    assert all(m.key == e["user_id"].encode() for m, e in zip(good, events, strict=True))
    assert 0.15 * len(events) < len(messages) - len(good) < 0.25 * len(events)


def test_counts_match_what_was_sent(events: list[dict[str, Any]]) -> None:
    injector = MalformedInjector(0.2, "t", seed=1)
    messages = injector.messages(events)
    sent: dict[MalformedKind, int] = {}
    for m in messages:
        if m.malformed is not None:
            sent[m.malformed] = sent.get(m.malformed, 0) + 1
    assert sent == dict(injector.counts)
    assert set(sent) == set(SIMULATOR_KINDS)  # every kind shows up in a long enough stream


def test_no_share_no_malformed(events: list[dict[str, Any]]) -> None:
    injector = MalformedInjector(0.0, "t", seed=1)
    assert len(injector.messages(events)) == len(events)
    assert not injector.counts


def test_same_seed_same_messages(events: list[dict[str, Any]]) -> None:
    first = MalformedInjector(0.05, "t", seed=3).messages(events)
    assert first == MalformedInjector(0.05, "t", seed=3).messages(events)


@pytest.mark.parametrize("kind", list(EXPECTED_REASON))
def test_each_kind_breaks_the_contract_as_the_engine_should_see_it(
    events: list[dict[str, Any]], kind: MalformedKind
) -> None:
    for event in events[:50]:
        message = MalformedInjector(1.0, "t", seed=1).malformed(kind, event)
        real_ts = event["ts"]  # the runner's Kafka timestamps are never behind sim time
        assert _violates_contract(message, real_ts), (kind, message)
        rejected = validate_event(
            message.value or b"",
            key=message.key,
            message_ts=message.timestamp_ms or real_ts,
            now_ms=real_ts,
            max_age_ms=MAX_AGE_MS,
        )
        assert getattr(rejected, "reason", None) is EXPECTED_REASON[kind], (kind, rejected)


def test_every_kind_has_an_expected_outcome() -> None:
    assert set(EXPECTED_OUTCOME) == set(MalformedKind)
    assert len(MalformedKind) >= 40


@pytest.mark.parametrize(
    "kind", [k for k, outcome in EXPECTED_OUTCOME.items() if isinstance(outcome, Accepted)]
)
def test_valid_kinds_pass_and_stay_off_real_users(
    events: list[dict[str, Any]], kind: MalformedKind
) -> None:
    injector = MalformedInjector(1.0, "t", seed=1)
    injector.malformed(MalformedKind.EXTRA_FIELDS, events[0])  # something to resend
    real_users = {e["user_id"] for e in events}
    for event in events[1:50]:
        message = injector.malformed(kind, event)
        assert message.value is not None
        accepted = validate_event(
            message.value, key=message.key, message_ts=event["ts"], max_age_ms=MAX_AGE_MS
        )
        assert not hasattr(accepted, "reason"), (kind, accepted)
        data = orjson.loads(message.value)
        if kind is MalformedKind.DUPLICATE_NEAR:
            assert data == event
        else:
            assert data["user_id"] not in real_users
            assert data["user_id"].startswith(flood_user("t", ""))

"""The simulator against the real broker and ClickHouse: what it reports is what it sent.

A stand-in for the engine produces a few offers while the run is going; the clickstream is then
read back until the expected count or a deadline (never up to end offsets: Tansu misreports
them).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from clickhouse_driver import Client
from jsonschema import Draft202012Validator
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from promo.clickhouse import apply_migrations
from promo.settings import REPO_ROOT
from schemas import JSON_SCHEMA_DIR
from schemas.events import ClickEvent
from simulator.population import user_id_of
from simulator.runner import SimulationConfig, SimulationSummary, run_simulation
from simulator.shop import DAY_MS
from streams.validation import validate_event

HOUR_MS = 3_600_000
FUTURE_SKEW_MS = 300_000
MAX_AGE_MS = 90 * DAY_MS
VALIDATOR = Draft202012Validator(
    json.loads((JSON_SCHEMA_DIR / "clickstream-event.schema.json").read_text())
)


@pytest.fixture
def drop_topics(bootstrap_servers: list[str]) -> Iterator[list[str]]:
    """Topics to delete after the test: the broker keeps everything in memory."""
    topics: list[str] = []
    yield topics
    # On Tansu a fetch still waiting at the broker (up to fetch_max_wait_ms, 500) when its topic
    # is deleted brings the topic back, empty: let the run's last fetches finish first.
    time.sleep(1.0)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        admin.delete_topics(topics)
    finally:
        admin.close()


def _config(bootstrap_servers: list[str], name: str, **overrides: object) -> SimulationConfig:
    fields: dict[str, object] = {
        "bootstrap_servers": bootstrap_servers,
        "clickstream_topic": f"test-sim-clickstream-{name}",
        "offers_topic": f"test-sim-offers-{name}",
        "users": 50,
        "days": 0.2,
        "seed": 7,
        "malformed_share": 0.05,
        "tail_seconds": 0.0,
        "partitions": 4,
    }
    fields.update(overrides)
    return SimulationConfig(**fields)  # type: ignore[arg-type]


def _offer(n: int, user_id: str, created_at: int, expires_at: int) -> bytes:
    return orjson.dumps(
        {
            "offer_id": f"of-{n:024x}",
            "decision_id": f"de-{n:024x}",
            "user_id": user_id,
            "offer_code": "pct10",
            "kind": "percent_off",
            "title": "10 % off your order",
            "value": 10.0,
            "coupon_code": f"P10-{n}",
            "created_at": created_at,
            "expires_at": expires_at,
            "reason": "test",
            "segment": 0,
            "policy_version": "test",
            "model_version": 0,
            "schema_version": 1,
        }
    )


def _engine_stand_in(
    bootstrap_servers: list[str], topic: str, run_id: str, start_ms: int, delay: float
) -> None:
    """After ``delay`` s: ten offers for run users, one redelivery, one for a stranger, one
    already expired."""
    time.sleep(delay)
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers)
    created, expires = start_ms + 1_000, start_ms + 48 * HOUR_MS

    def send(n: int, user_index: int, until: int) -> None:
        user = user_id_of(user_index, prefix=f"r{run_id}-")
        producer.send(topic, key=user.encode(), value=_offer(n, user, created, until))

    for n in range(10):
        send(n, n, expires)
    send(0, 0, expires)
    send(10, 99999, expires)
    send(11, 11, start_ms + 2_000)
    producer.close(timeout=20)


def _read_back(
    bootstrap_servers: list[str], topic: str, expected: int
) -> list[tuple[bytes, bytes, int]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    partitions = consumer.partitions_for_topic(topic) or set()
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    received: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + 60
    while len(received) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            received.extend((r.key, r.value, r.timestamp) for r in records)
    consumer.close()
    return received


def _is_good(key: bytes, value: bytes, message_ts: int) -> bool:
    """What the worker accepts (its own validator, with its default limits)."""
    checked = validate_event(
        value,
        key=key,
        message_ts=message_ts,
        max_future_skew_ms=FUTURE_SKEW_MS,
        max_age_ms=MAX_AGE_MS,
    )
    return isinstance(checked, ClickEvent)


def test_simulation_round_trip(
    bootstrap_servers: list[str], unique_name: str, drop_topics: list[str]
) -> None:
    # Shoppers come by the hour of day: start the run at a fixed hour (18:00 UTC, before the
    # evening peak) so how many events 50 users send does not depend on when CI runs.
    latest = int(time.time() * 1000) - round(0.2 * DAY_MS) - HOUR_MS
    start_ms = latest - (latest - 18 * HOUR_MS) % DAY_MS
    config = _config(bootstrap_servers, unique_name, start_ms=start_ms, tail_seconds=6.0)
    drop_topics += [config.clickstream_topic, config.offers_topic]
    engine = threading.Thread(
        target=_engine_stand_in,
        args=(bootstrap_servers, config.offers_topic, config.run_id, start_ms, 2.0),
    )
    engine.start()
    summary = run_simulation(config)
    engine.join()

    messages = _read_back(
        bootstrap_servers, config.clickstream_topic, summary.events_sent + summary.malformed_total
    )
    good = [orjson.loads(v) for k, v, ts in messages if _is_good(k, v, ts)]
    assert summary.events_sent > 50
    assert summary.malformed_total > 0
    assert len(good) == summary.events_sent
    assert len(messages) - len(good) == summary.malformed_total
    assert len({e["event_id"] for e in good}) == len(good)
    assert all(e["event_id"].startswith(f"{config.run_id}-") for e in good)

    assert summary.offers_received == 13
    assert summary.offers_not_shown.get("duplicate") == 1
    assert summary.offers_not_shown.get("unknown_user") == 1
    assert summary.offers_not_shown.get("expired") == 1
    assert summary.offers_shown + summary.offers_not_shown.get("not_reached", 0) == 10
    shown = [e for e in good if e["type"] == "offer_shown"]
    assert len(shown) == summary.offers_shown > 0


def test_truth_and_run_row_in_clickhouse(
    bootstrap_servers: list[str],
    clickhouse_url: str,
    clickhouse_client: Client,
    unique_name: str,
    drop_topics: list[str],
) -> None:
    database = clickhouse_client.connection.database  # a fresh one, dropped after the test
    apply_migrations(clickhouse_client, REPO_ROOT / "deploy" / "clickhouse")
    url = clickhouse_url.rsplit("/", 1)[0] + f"/{database}"
    config = _config(bootstrap_servers, unique_name, clickhouse_url=url)
    drop_topics += [config.clickstream_topic, config.offers_topic]

    summary: SimulationSummary = run_simulation(config)

    truth = clickhouse_client.execute(
        "SELECT action, count(), uniqExact(user_id) FROM sim_truth WHERE run_id = %(run)s "
        "GROUP BY action ORDER BY action",
        {"run": config.run_id},
    )
    assert truth == [
        (action, 50, 50) for action in sorted(["none", *(o.code for o in config.catalogue)])
    ]
    [run] = clickhouse_client.execute(
        "SELECT users, events_sent, malformed_sent, sim_start_ms, sim_end_ms FROM sim_runs "
        "WHERE run_id = %(run)s",
        {"run": config.run_id},
    )
    assert run == (
        50,
        summary.events_sent,
        summary.malformed_total,
        summary.sim_start_ms,
        summary.sim_end_ms,
    )

"""The runner's pure parts: configuration, start time, offer decoding, summary text."""

from __future__ import annotations

import orjson
import pytest

from promo.settings import Settings
from simulator.config import SimulationConfig, SimulationSummary, default_start_ms
from simulator.runner import _decode_offer
from simulator.shop import DAY_MS
from streams.errors import ConfigError

NOW = 1_800_000_000_000


def test_defaults_match_the_brief() -> None:
    config = SimulationConfig(bootstrap_servers=["127.0.0.1:19092"])
    assert (config.users, config.days, config.max_events_per_second) == (3000, 3.0, 1500.0)
    assert (config.malformed_share, config.tail_seconds, config.start_ms) == (0.005, 15.0, None)
    assert config.run_id != SimulationConfig(bootstrap_servers=["x:1"]).run_id


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("users", 0),
        ("days", 0.0),
        ("malformed_share", 1.0),
        ("bootstrap_servers", []),
        ("max_events_per_second", 0.0),
        ("run_id", ""),
    ],
)
def test_a_bad_setting_is_named(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        SimulationConfig(**{"bootstrap_servers": ["x:1"], field: value})  # type: ignore[arg-type]


def test_from_settings_takes_servers_topics_and_truth_parameters() -> None:
    settings = Settings.model_validate(
        {
            "broker_url": "kafka://h1:9092;h2:9092",
            "topic_clickstream": "cs",
            "topic_offers": "of",
            "topic_partitions": 8,
            "topic_replication": 1,
            "attribution_window_hours": 24.0,
            "offer_ttl_hours": 24.0,
        }
    )
    config = SimulationConfig.from_settings(settings, users=50, seed=9)
    assert config.bootstrap_servers == ["h1:9092", "h2:9092"]
    assert (config.clickstream_topic, config.offers_topic) == ("cs", "of")
    assert (config.partitions, config.replication) == (8, 1)
    assert (config.window_hours, config.users, config.seed) == (24.0, 50, 9)
    assert config.clickhouse_url == settings.clickhouse_url


@pytest.mark.parametrize("days", [0.2, 3.0, 30.0])
def test_sim_time_ends_before_the_wall_clock_at_start(days: float) -> None:
    start = default_start_ms(NOW, days)
    assert start + round(days * DAY_MS) == NOW - 3_600_000


def test_offers_that_do_not_decode_are_none() -> None:
    assert _decode_offer(b"not json") is None
    assert _decode_offer(b"[1, 2]") is None
    assert _decode_offer(orjson.dumps({"offer_id": "of-1"})) is None
    assert _decode_offer(None) is None


def test_summary_reads_in_a_few_lines() -> None:
    summary = SimulationSummary(
        run_id="ab12cd34",
        users=3000,
        events_sent=90_000,
        malformed_sent={"not_json": 3, "key_mismatch": 2},
        offers_received=800,
        offers_shown=680,
        offers_not_shown={"not_reached": 120},
        offers_skipped={},
        offers_clicked=150,
        purchases=2100,
        coupon_purchases=300,
        sim_start_ms=NOW,
        sim_end_ms=NOW + 3 * DAY_MS,
        wall_seconds=60.0,
    )
    text = summary.format()
    assert summary.malformed_total == 5
    assert "run ab12cd34: 3000 users" in text and "+ 72.0 h in 60.0 s (1500 messages/s)" in text
    assert "90000 good, 5 malformed (key_mismatch 2, not_json 3)" in text
    assert "not shown (not_reached 120)" in text
    assert len(text.splitlines()) == 4

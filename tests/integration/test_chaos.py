"""The chaos suite at CI size, on the real servers (see README "Chaos suite"): crashes with
learning on, a flood of every malformed kind, bad settings, a ClickHouse outage, and the broker
frozen then restarted empty. ``make chaos`` runs the same scenarios at full size. A server that
does not answer fails these tests under CI (conftest). The last two stop the local servers, so
they need servers this checkout started (``make up`` here, not in another checkout), and run
after every other test."""

from __future__ import annotations

import json

import pytest

from chaos import broker_restart, crashes, flood, outage, settings_faults
from chaos.outcome import ScenarioResult
from chaos.servers import Servers


@pytest.fixture
def servers(broker_url: str, clickhouse_url: str) -> Servers:
    return Servers(broker_url, clickhouse_url)


def _passed(result: ScenarioResult) -> None:
    assert result.ok, json.dumps(result.to_json(), indent=1, default=str)[:20_000]


def test_crashes_with_learning_on(servers: Servers) -> None:
    result = crashes.run(servers, crashes.CrashConfig(events=6_000, kills=5, seed=3))
    _passed(result)
    assert len(result.measured["kills_at_progress"]) == 5


def test_bad_input_flood(servers: Servers) -> None:
    result = flood.run(servers, flood.FloodConfig(bad=3_000, good=2_000, seed=5))
    _passed(result)
    assert result.injected["kinds"] >= 40


def test_bad_settings(servers: Servers) -> None:
    _passed(settings_faults.run(servers))


@pytest.mark.stops_servers
def test_clickhouse_outage(servers: Servers) -> None:
    _passed(outage.run(servers, outage.OutageConfig(events=6_000, outage_seconds=20.0, seed=7)))


@pytest.mark.stops_servers
def test_broker_frozen_then_restarted_empty(servers: Servers) -> None:
    config = broker_restart.BrokerRestartConfig(events=3_000, pause_seconds=10.0, seed=9)
    _passed(broker_restart.run(servers, config))

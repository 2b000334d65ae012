"""The chaos suite at CI size, on the real servers (see README "Chaos suite"): crashes with
learning on, a flood of every malformed kind, and bad settings. ``make chaos`` runs the same
scenarios at full size. A server that does not answer fails these tests under CI (conftest)."""

from __future__ import annotations

import json

import pytest

from chaos import crashes, flood, settings_faults
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

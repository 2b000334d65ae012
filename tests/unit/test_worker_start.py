"""What ``promo worker`` checks before it starts (no servers: the first server call is
replaced, and each test sees which one came first)."""

from __future__ import annotations

import argparse

import pytest

import promo.clickhouse
import promo.kafka_io
from promo.cli import _worker
from promo.settings import Settings
from streams.errors import ConfigError


class ReachedKafka(Exception):
    """The start got past ClickHouse to the broker."""


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong_password(settings: Settings) -> None:
        raise ConfigError("PROMO_CLICKHOUSE_PASSWORD: refused")

    def kafka(*args: object) -> None:
        raise ReachedKafka

    monkeypatch.setattr(promo.clickhouse, "check_schema", wrong_password)
    monkeypatch.setattr(promo.kafka_io, "latest_snapshot", kafka)


@pytest.mark.usefixtures("servers")
def test_a_worker_with_its_sinks_stops_on_a_clickhouse_configuration_error() -> None:
    with pytest.raises(ConfigError, match="PROMO_CLICKHOUSE_PASSWORD"):
        _worker(Settings(sinks_in_worker=True), argparse.Namespace())


@pytest.mark.usefixtures("servers")
def test_a_worker_whose_sinks_run_apart_never_checks_clickhouse() -> None:
    # Compose runs its workers so: a rotated ClickHouse password must not stop decisions.
    with pytest.raises(ReachedKafka):
        _worker(Settings(sinks_in_worker=False), argparse.Namespace())

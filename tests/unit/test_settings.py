"""The settings object: production defaults, and a bad value named at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from promo.cli import main
from promo.settings import load_settings
from streams.errors import ConfigError


def test_defaults_are_production_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROMO_BROKER_URL", "PROMO_TOPIC_REPLICATION", "PROMO_BROKER_SESSION_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.topic_replication, s.broker_session_timeout) == (3, 60.0)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PROMO_CONTROL_SHARE": "1.5"}, "PROMO_CONTROL_SHARE"),
        ({"PROMO_BROKER_URL": "localhost:9092"}, "PROMO_BROKER_URL"),
        ({"PROMO_CLICKHOUSE_URL": "http://x"}, "PROMO_CLICKHOUSE_URL"),
        ({"PROMO_OFFER_TTL_HOURS": "72"}, "PROMO_OFFER_TTL_HOURS"),
        ({"PROMO_BATCH_SIZE": "zero"}, "PROMO_BATCH_SIZE"),
        ({"PROMO_DAILY_BUDGET": "-5"}, "PROMO_DAILY_BUDGET"),
    ],
)
def test_a_bad_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


def test_a_bad_catalogue_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:

    path = tmp_path / "offers.json"
    path.write_text('[{"code": "x", "kind": "percent_off", "value": 150, "title": "t"}]')
    monkeypatch.setenv("PROMO_OFFER_CATALOGUE", str(path))
    with pytest.raises(ConfigError, match=r"PROMO_OFFER_CATALOGUE.*percentage"):
        load_settings().catalogue()


def test_no_password_in_urls_and_none_printed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMO_CLICKHOUSE_URL", "clickhouse://writer:hunter2@db:9000/promo")
    named = r"PROMO_CLICKHOUSE_URL.*PROMO_CLICKHOUSE_PASSWORD"
    with pytest.raises(ConfigError, match=named) as err:
        load_settings()
    assert "hunter2" not in str(err.value)
    monkeypatch.setenv("PROMO_CLICKHOUSE_URL", "clickhouse://writer@db:9000/promo")
    monkeypatch.setenv("PROMO_CLICKHOUSE_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert main(["settings"]) == 0
    printed = capsys.readouterr().out
    assert "PROMO_CLICKHOUSE_URL=clickhouse://writer@db:9000/promo" in printed
    assert "hunter2" not in printed

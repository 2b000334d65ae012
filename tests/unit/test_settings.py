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
        ({"PROMO_BROKER_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "PROMO_BROKER_SASL_USERNAME"),
        ({"PROMO_BROKER_SSL_CAFILE": "/etc/hostname"}, "PROMO_BROKER_SSL_CAFILE"),
        (
            {"PROMO_BROKER_SECURITY_PROTOCOL": "SSL", "PROMO_BROKER_SSL_CAFILE": "/no/such.pem"},
            "PROMO_BROKER_SSL_CAFILE",
        ),
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


def test_broker_security_reaches_every_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agents.app import broker_credentials, create_app
    from simulator.config import SimulationConfig

    monkeypatch.setenv("PROMO_BROKER_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PROMO_BROKER_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PROMO_BROKER_SASL_USERNAME", "promo")
    monkeypatch.setenv("PROMO_BROKER_SASL_PASSWORD", "s3cret-kafka")
    settings = load_settings()
    options = settings.kafka_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("SCRAM-SHA-512", "promo")
    assert options["sasl_plain_password"] == "s3cret-kafka"
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"
    credentials = broker_credentials(settings)
    assert credentials is not None and credentials.protocol.value == "SASL_SSL"
    faust_credentials = create_app(settings).app.conf.broker_credentials
    assert faust_credentials is not None and faust_credentials.protocol.value == "SASL_SSL"
    assert SimulationConfig.from_settings(settings).kafka_options["sasl_plain_username"] == "promo"
    assert "s3cret-kafka" not in repr(settings) and "s3cret-kafka" not in repr(credentials)


def test_plaintext_by_default_with_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.app import broker_credentials

    monkeypatch.delenv("PROMO_BROKER_SECURITY_PROTOCOL", raising=False)
    settings = load_settings()
    assert settings.kafka_options() == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(settings) is None

"""The settings object: production defaults, and a bad value named at start-up."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from promo.cli import LOCAL_PROFILE, main
from promo.settings import REPO_ROOT, Settings, load_settings
from streams.errors import ConfigError


def test_defaults_are_production_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PROMO_BROKER_URL", "PROMO_TOPIC_REPLICATION", "PROMO_BROKER_SESSION_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.topic_replication, s.broker_session_timeout) == (3, 60.0)
    assert (s.fairness_max_ratio, s.high_value_spend_30d) == (1.25, 300.0)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PROMO_CONTROL_SHARE": "1.5"}, "PROMO_CONTROL_SHARE"),
        ({"PROMO_BROKER_URL": "localhost:9092"}, "PROMO_BROKER_URL"),
        ({"PROMO_CLICKHOUSE_URL": "http://x"}, "PROMO_CLICKHOUSE_URL"),
        ({"PROMO_OFFER_TTL_HOURS": "72"}, "PROMO_OFFER_TTL_HOURS"),
        ({"PROMO_BATCH_SIZE": "zero"}, "PROMO_BATCH_SIZE"),
        ({"PROMO_DAILY_BUDGET": "-5"}, "PROMO_DAILY_BUDGET"),
        ({"PROMO_FAIRNESS_MAX_RATIO": "0.8"}, "PROMO_FAIRNESS_MAX_RATIO"),  # must be above 1
        ({"PROMO_FAIRNESS_MAX_RATIO": "four fifths"}, "PROMO_FAIRNESS_MAX_RATIO"),
        ({"PROMO_HIGH_VALUE_SPEND_30D": "0"}, "PROMO_HIGH_VALUE_SPEND_30D"),
        ({"PROMO_ABUSE_THRESHOLD": "0"}, "PROMO_ABUSE_THRESHOLD"),
        ({"PROMO_ABUSE_THRESHOLD": "1.5"}, "PROMO_ABUSE_THRESHOLD"),
        ({"PROMO_ABUSE_THRESHOLD": "off"}, "PROMO_ABUSE_THRESHOLD"),
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


@pytest.fixture
def no_promo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a host nobody configured (``make`` exports the local profile to the tests)."""
    for name in [n for n in os.environ if n.startswith("PROMO_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_promo_env")
def test_the_project_tree_alone_never_reads_the_local_profile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert (REPO_ROOT / LOCAL_PROFILE).is_file()
    assert main(["settings"]) == 0
    assert "PROMO_BROKER_URL=kafka://localhost:9092\n" in capsys.readouterr().out


@pytest.mark.usefixtures("no_promo_env")
def test_an_env_file_is_read_beneath_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "promo.env"
    profile.write_text(
        "# a comment\nPROMO_BROKER_URL=kafka://file:1\nPROMO_TOPIC_REPLICATION=1\n"
        "PROMO_CLICKHOUSE_PASSWORD=hunter2\nNOT_OURS=x\n"
    )
    monkeypatch.setenv("PROMO_TOPIC_REPLICATION", "2")
    settings = load_settings(profile)
    assert (settings.broker_url, settings.topic_replication) == ("kafka://file:1", 2)
    assert settings.clickhouse_password.get_secret_value() == "hunter2"
    # Before or after the command; `promo settings` says where the values came from.
    for argv in (
        ["--env-file", str(profile), "settings"],
        ["settings", "--env-file", str(profile)],
    ):
        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert printed.startswith(f"# from the environment, then {profile}")
        assert "PROMO_BROKER_URL=kafka://file:1\n" in printed
        assert "PROMO_TOPIC_REPLICATION=2\n" in printed
        assert "hunter2" not in printed and "PROMO_CLICKHOUSE_PASSWORD=**********" in printed


@pytest.mark.usefixtures("no_promo_env")
def test_promo_env_file_names_the_file_and_the_option_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    named, given = tmp_path / "named.env", tmp_path / "given.env"
    named.write_text("PROMO_BROKER_URL=kafka://named:1\n")
    given.write_text("PROMO_BROKER_URL=kafka://given:1\n")
    monkeypatch.setenv("PROMO_ENV_FILE", str(named))
    assert load_settings().broker_url == "kafka://named:1"
    assert load_settings(given).broker_url == "kafka://given:1"


@pytest.mark.usefixtures("no_promo_env")
def test_a_missing_env_file_stops_naming_the_option(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.env"
    assert main(["--env-file", str(missing), "settings"]) == 2
    assert f"--env-file {missing}: no such file" in capsys.readouterr().err
    monkeypatch.setenv("PROMO_ENV_FILE", str(missing))
    with pytest.raises(ConfigError, match=f"PROMO_ENV_FILE {missing}: no such file"):
        load_settings()


@pytest.mark.usefixtures("no_promo_env")
def test_a_bad_value_in_the_file_is_named_with_the_file(tmp_path: Path) -> None:
    profile = tmp_path / "promo.env"
    profile.write_text("PROMO_CONTROL_SHARE=1.5\n")
    with pytest.raises(ConfigError, match=rf"then {profile}\): PROMO_CONTROL_SHARE"):
        load_settings(profile)


@pytest.mark.usefixtures("no_promo_env")
def test_no_broker_at_the_default_address_suggests_the_local_profile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promo import kafka_io

    def unreachable(settings: Settings, *args: object, **kwargs: object) -> None:
        raise kafka_io.BrokerUnavailable(f"no Kafka broker at {settings.broker_url}")

    monkeypatch.setattr(kafka_io, "read_messages", unreachable)
    assert main(["offers"]) == 1
    err = capsys.readouterr().err
    assert "no Kafka broker at kafka://localhost:9092" in err
    assert f"promo --env-file {LOCAL_PROFILE} offers" in err
    # Told where the servers are, the message stays the server's own.
    profile = tmp_path / "promo.env"
    profile.write_text("PROMO_BROKER_URL=kafka://elsewhere:9092\n")
    assert main(["--env-file", str(profile), "offers"]) == 1
    assert "--env-file" not in capsys.readouterr().err


@pytest.mark.usefixtures("no_promo_env")
def test_the_local_profile_read_as_a_file_is_the_exported_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaos.harness import local_profile

    profile = local_profile()
    from_file = load_settings(REPO_ROOT / LOCAL_PROFILE)
    for name, value in profile.items():
        monkeypatch.setenv(name, value)
    assert from_file == load_settings()
    default = Settings.model_fields["broker_url"].default
    assert from_file.broker_url == profile["PROMO_BROKER_URL"] != default

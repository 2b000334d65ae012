"""docker-compose.yml, validated statically (no Docker engine runs here): the production stack
is consistent with the settings and gives every process the least privilege it needs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from promo.settings import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMO_SERVICES = {n: s for n, s in SERVICES.items() if s.get("image") == "promo-stream:latest"}
REQUIRED_SECRET = re.compile(r"^\$\{(\w+):\?[^}]*\}$")


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_every_promo_setting_in_compose_exists_and_validates() -> None:
    assert set(PROMO_SERVICES) >= {"migrate", "worker", "simulate"}
    for name, service in PROMO_SERVICES.items():
        env = _env(service)
        fields = {k.removeprefix("PROMO_").lower(): v for k, v in env.items()}
        unknown = set(fields) - set(Settings.model_fields)
        assert not unknown, f"{name}: unknown settings {unknown}"
        # Secrets are substituted at run time; any value will do to validate the rest.
        values = {k: "x" if REQUIRED_SECRET.match(v) else v for k, v in fields.items()}
        Settings(**values)  # raises on an invalid production value


def test_no_password_less_clickhouse_and_secrets_are_required() -> None:
    clickhouse = _env(SERVICES["clickhouse"])
    assert "CLICKHOUSE_SKIP_USER_SETUP" not in clickhouse
    assert clickhouse["CLICKHOUSE_USER"] != "default"
    for env in [clickhouse, *(_env(s) for s in PROMO_SERVICES.values())]:
        for key, value in env.items():
            if "PASSWORD" in key:
                assert REQUIRED_SECRET.match(value), f"{key} must be required, not defaulted"


def test_each_process_connects_as_its_own_user_and_the_users_are_created() -> None:
    users = {
        name: re.match(r"clickhouse://(\w+)@", _env(s)["PROMO_CLICKHOUSE_URL"])[1]  # type: ignore[index]
        for name, s in PROMO_SERVICES.items()
    }
    assert users["migrate"] == "promo_migrator"
    assert users["worker"] == users["simulate"] == "promo_writer"
    mounts = SERVICES["clickhouse"]["volumes"]
    init = next(m.split(":")[0] for m in mounts if "docker-entrypoint-initdb.d" in m)
    script = (REPO_ROOT / init / "create-users.sh").read_text()
    for user in ("promo_migrator", "promo_writer", "promo_analyst"):
        assert f"CREATE USER IF NOT EXISTS {user} " in script
    assert "GRANT SELECT, INSERT ON ${db}.* TO promo_writer" in script
    assert "GRANT SELECT ON ${db}.* TO promo_analyst" in script
    assert Path(REPO_ROOT / SERVICES["worker"]["build"]["dockerfile"]).is_file()

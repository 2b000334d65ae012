"""docker-compose.yml, validated statically (no Docker engine runs here): the production stack
is consistent with the settings and gives every process the least privilege it needs, and
what Prometheus and Grafana are given (files, ports, variables, metric and table names) exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from agents.metrics import SinkMetrics, WorkerMetrics
from promo.settings import REPO_ROOT, Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMO_SERVICES = {n: s for n, s in SERVICES.items() if s.get("image") == "promo-stream:latest"}
REQUIRED_SECRET = re.compile(r"^\$\{(\w+):\?[^}]*\}$")
#: Where the images read their configuration (Prometheus' flag; Grafana's GF_PATHS_PROVISIONING).
PROMETHEUS_CONFIG_FLAG = "--config.file="
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
#: Series Prometheus writes itself for every target, not exported by the workers.
PROMETHEUS_OWN_SERIES = {"up"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
PROMQL_WORDS |= {"and", "or", "unless"}


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def _binds(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts (``./source:target[:mode]``): container path -> repo path."""
    binds = {}
    for mount in service.get("volumes") or []:
        source, target = mount.split(":")[:2]
        if source.startswith((".", "/")):
            binds[target] = REPO_ROOT / source
    return binds


def _mounted(service: dict[str, Any], container_path: str) -> Path:
    """The repo path a container path of the service comes from (through a bind mount)."""
    for target, source in _binds(service).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / Path(container_path).relative_to(target)
    raise AssertionError(f"{container_path} is not mounted into the service")


def _prometheus_config() -> dict[str, Any]:
    prometheus = SERVICES["prometheus"]
    flag = next(a for a in prometheus["command"] if a.startswith(PROMETHEUS_CONFIG_FLAG))
    path = _mounted(prometheus, flag.removeprefix(PROMETHEUS_CONFIG_FLAG))
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def _grafana_provisioning() -> Path:
    return _mounted(SERVICES["grafana"], GRAFANA_PROVISIONING)


def _datasources() -> dict[str, dict[str, Any]]:
    """The provisioned Grafana data sources, by uid."""
    files = sorted((_grafana_provisioning() / "datasources").glob("*.y*ml"))
    return {d["uid"]: d for f in files for d in yaml.safe_load(f.read_text())["datasources"]}


def _dashboards() -> list[dict[str, Any]]:
    """The dashboards Grafana's file providers load, read where the providers look."""
    dashboards = []
    for f in sorted((_grafana_provisioning() / "dashboards").glob("*.y*ml")):
        for provider in yaml.safe_load(f.read_text())["providers"]:
            folder = _mounted(SERVICES["grafana"], provider["options"]["path"])
            dashboards += [json.loads(d.read_text()) for d in sorted(folder.glob("*.json"))]
    return dashboards


def _targets(datasource_type: str) -> list[dict[str, Any]]:
    uids = {uid for uid, d in _datasources().items() if d["type"] == datasource_type}
    return [
        t
        for dashboard in _dashboards()
        for panel in dashboard["panels"]
        for t in panel.get("targets", [])
        if t["datasource"]["uid"] in uids
    ]


def _promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w:$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr)
    return set(names) - PROMQL_WORDS


def _exported_series() -> set[str]:
    """Every series name a worker's or a sinks process's /metrics can show, from their
    registries' metric families."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    families = [*WorkerMetrics().registry.collect(), *SinkMetrics().registry.collect()]
    return {f.name + s for f in families for s in suffixes[f.type]}


def _clickhouse_relations() -> set[str]:
    """Tables and views the versioned DDL creates."""
    ddl_dir = Path(Settings.model_fields["clickhouse_ddl_dir"].default)
    ddl = "\n".join(f.read_text() for f in sorted(ddl_dir.glob("*.sql")))
    return set(re.findall(r"CREATE (?:TABLE|VIEW|MATERIALIZED VIEW) IF NOT EXISTS (\w+)", ddl))


def _worker_port(service: str = "worker") -> int:
    env = _env(SERVICES[service])
    return int(env.get("PROMO_WORKER_PORT", Settings.model_fields["worker_port"].default))


def test_every_promo_setting_in_compose_exists_and_validates() -> None:
    assert set(PROMO_SERVICES) >= {"migrate", "worker", "sinks", "simulate"}
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
    assert "GF_SECURITY_ADMIN_PASSWORD" in _env(SERVICES["grafana"])
    for name, service in SERVICES.items():
        for key, value in _env(service).items():
            if "PASSWORD" in key:
                assert REQUIRED_SECRET.match(value), f"{name}: {key} must be required"


def test_env_example_lists_every_required_secret() -> None:
    required = {
        m[1]
        for service in SERVICES.values()
        for value in _env(service).values()
        if (m := REQUIRED_SECRET.match(value))
    }
    example = (REPO_ROOT / ".env.example").read_text()
    assert required == set(re.findall(r"^(\w+)=", example, re.MULTILINE))


def test_each_process_connects_as_its_own_user_and_the_users_are_created() -> None:
    users = {
        name: re.match(r"clickhouse://(\w+)@", _env(s)["PROMO_CLICKHOUSE_URL"])[1]  # type: ignore[index]
        for name, s in PROMO_SERVICES.items()
    }
    assert users["migrate"] == "promo_migrator"
    assert users["worker"] == users["sinks"] == users["simulate"] == "promo_writer"
    mounts = SERVICES["clickhouse"]["volumes"]
    init = next(m.split(":")[0] for m in mounts if "docker-entrypoint-initdb.d" in m)
    script = (REPO_ROOT / init / "create-users.sh").read_text()
    for user in ("promo_migrator", "promo_writer", "promo_analyst"):
        assert f"CREATE USER IF NOT EXISTS {user} " in script
    assert "GRANT SELECT, INSERT ON ${db}.* TO promo_writer" in script
    assert "GRANT SELECT ON ${db}.* TO promo_analyst" in script
    assert Path(REPO_ROOT / SERVICES["worker"]["build"]["dockerfile"]).is_file()


def test_every_mounted_file_and_volume_exists() -> None:
    named = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO_ROOT / source).exists(), f"{name} mounts {source}, not in the repo"
            else:
                assert source in named, f"{name} mounts the undeclared volume {source}"
    assert _binds(SERVICES["prometheus"]) and _binds(SERVICES["grafana"])


def test_only_grafana_is_published_and_the_workers_listen_inside_the_network() -> None:
    published = {name: s["ports"] for name, s in SERVICES.items() if s.get("ports")}
    assert list(published) == ["grafana"]
    assert [p.split(":")[-1] for p in published["grafana"]] == ["3000"]
    served = {n for n, s in PROMO_SERVICES.items() if "PROMO_WORKER_BIND" in _env(s)}
    assert served == {"worker", "sinks"}, "only workers and sinks serve /metrics to Prometheus"
    assert all(_env(SERVICES[n])["PROMO_WORKER_BIND"] == "0.0.0.0" for n in served)


def test_the_workers_decide_and_the_sinks_service_writes_clickhouse() -> None:
    assert _env(SERVICES["worker"])["PROMO_SINKS_IN_WORKER"] == "false"
    assert SERVICES["sinks"]["command"] == ["sinks"]
    assert "PROMO_SINKS_IN_WORKER" not in _env(SERVICES["sinks"])


def test_prometheus_scrapes_every_worker_and_sinks_replica_on_its_metrics_port() -> None:
    assert SERVICES["worker"]["deploy"]["replicas"] > 1
    worker, sinks = _prometheus_config()["scrape_configs"]
    assert '@app.page("/metrics")' in (REPO_ROOT / "agents" / "metrics.py").read_text()
    assert "start_http_server" in (REPO_ROOT / "agents" / "sinks_apart.py").read_text()
    for job, service in ((worker, "worker"), (sinks, "sinks")):
        assert job["metrics_path"] == "/metrics"
        # One A record per replica: a static target would reach one replica, at random.
        assert "static_configs" not in job
        (dns,) = job["dns_sd_configs"]
        assert dns["names"] == [service] and dns["type"] == "A"
        assert dns["port"] == _worker_port(service) == Settings.model_fields["worker_port"].default


def test_dashboard_metrics_are_ones_the_workers_export() -> None:
    targets = _targets("prometheus")
    assert targets
    exported = _exported_series() | PROMETHEUS_OWN_SERIES
    jobs = {job["job_name"] for job in _prometheus_config()["scrape_configs"]}
    for target in targets:
        named = _promql_metrics(target["expr"])
        assert named, f"no metric found in {target['expr']!r}"
        assert named <= exported, f"not exported: {named - exported} in {target['expr']!r}"
        assert set(re.findall(r'job="([^"]*)"', target["expr"])) <= jobs


def test_dashboard_sql_reads_tables_and_views_the_ddl_creates() -> None:
    targets = _targets("grafana-clickhouse-datasource")
    assert targets
    relations = _clickhouse_relations()
    database = urlsplit(_env(SERVICES["worker"])["PROMO_CLICKHOUSE_URL"]).path.strip("/")
    for target in targets:
        read = re.findall(r"\b(?:FROM|JOIN)\s+(?:(\w+)\.)?(\w+)", target["rawSql"], re.I)
        assert read, f"no table in {target['rawSql']!r}"
        for db, name in read:
            assert db in ("", database) and name in relations, f"{db}.{name} is not in the DDL"


def test_grafana_reads_clickhouse_as_the_read_only_analyst() -> None:
    (clickhouse,) = [d for d in _datasources().values() if "clickhouse" in d["type"]]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    assert clickhouse["type"] in _env(SERVICES["grafana"])["GF_INSTALL_PLUGINS"]
    assert clickhouse["jsonData"]["username"] == "promo_analyst"
    password = re.fullmatch(r"\$\{(\w+)\}", clickhouse["secureJsonData"]["password"])
    assert password, "the password must come from Grafana's environment"
    grafana_value = _env(SERVICES["grafana"])[password[1]]
    assert REQUIRED_SECRET.match(grafana_value)
    # The same secret create-users.sh gives promo_analyst.
    assert _env(SERVICES["clickhouse"])["PROMO_ANALYST_PASSWORD"] == grafana_value
    # Where the workers write: same server, port and database.
    writes = urlsplit(_env(SERVICES["worker"])["PROMO_CLICKHOUSE_URL"])
    data = clickhouse["jsonData"]
    assert (data["host"], data["port"]) == (writes.hostname, writes.port)
    assert data["protocol"] == "native"  # the port of the workers' clickhouse:// URL
    assert data["defaultDatabase"] == writes.path.strip("/")
    # The plugin sets max_execution_time on every query, which readonly = 1 otherwise refuses.
    script = (REPO_ROOT / "deploy" / "clickhouse-users" / "create-users.sh").read_text()
    assert "readonly = 1, max_execution_time CHANGEABLE_IN_READONLY" in script


def test_grafana_queries_provisioned_sources_of_running_services_and_panels_have_units() -> None:
    sources = _datasources()
    prometheus = next(d for d in sources.values() if d["type"] == "prometheus")
    assert urlsplit(prometheus["url"]).hostname in SERVICES
    assert urlsplit(prometheus["url"]).port == 9090  # Prometheus' default listen address
    assert {"prometheus", "clickhouse"} <= set(SERVICES["grafana"]["depends_on"])
    (dashboard,) = _dashboards()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["title"] and panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        used = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
        assert {d["uid"] for d in used} <= set(sources), f"{panel['title']}: unknown source"


def test_every_variable_in_grafana_and_prometheus_files_is_provided() -> None:
    # Grafana substitutes $VAR and ${VAR} in provisioning files from its environment (not in
    # dashboards, where $ marks its own variables); Prometheus substitutes none in its config.
    provided = set(_env(SERVICES["grafana"]))
    files = [f for f in _grafana_provisioning().rglob("*") if f.is_file()]
    assert files
    for f in files:
        used = set(re.findall(r"\$\{?(\w+)\}?", f.read_text()))
        assert used <= provided, f"{f.name}: {used - provided} not in grafana's environment"
    for f in _binds(SERVICES["prometheus"]).values():
        assert "$" not in f.read_text(), f"{f.name}: Prometheus would read a variable literally"

"""promo evaluate's SQL side: each policy's logs in ClickHouse, read back by the report's SQL."""

from __future__ import annotations

from functools import partial

from clickhouse_driver import Client

from agents.app import engine_config
from promo.evaluation_store import sql_estimate
from promo.settings import Settings
from simulator.evaluate import EvaluationConfig, evaluate


def _with_database(url: str, database: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{database}"


def test_estimates_come_from_the_policies_logs(clickhouse_url: str, unique_name: str) -> None:
    base = f"promo_test_{unique_name}"
    settings = Settings(clickhouse_url=_with_database(clickhouse_url, base), control_share=0.3)
    config = EvaluationConfig(
        engine=engine_config(settings),
        users=300,
        days=3.0,
        seed=11,
        policies=("none", "random", "oracle"),
        workers=1,
    )
    admin = Client.from_url(_with_database(clickhouse_url, "default"))
    try:
        result = evaluate(config, partial(sql_estimate, settings))
        for name in ("random", "oracle"):
            sql = result["policies"][name]["sql_estimate"]
            assert sql["database"] == f"{base}_eval_{name}"
            assert sql["low"] <= sql["value"] <= sql["high"]
            assert sql["treated_users"] > 0 and sql["control_users"] > 0
            client = Client.from_url(_with_database(clickhouse_url, sql["database"]))
            decisions = client.execute("SELECT count() FROM decisions FINAL")[0][0]
            client.disconnect()
            assert decisions == result["policies"][name]["decisions"]
        # The same users and the same control group: every policy's estimate rests on them.
        assert (
            result["policies"]["random"]["sql_estimate"]["control_users"]
            == result["policies"]["oracle"]["sql_estimate"]["control_users"]
        )
    finally:
        for name in ("random", "oracle"):
            admin.execute(f"DROP DATABASE IF EXISTS {base}_eval_{name}")
        admin.disconnect()

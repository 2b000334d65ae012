"""Throughput of one real worker on the local servers: backlog in, rows in ClickHouse out.

Produces a backlog of synthetic clickstream events to fresh topics, starts one ``promo worker``
on them, and prints how fast the events reached ClickHouse (validated, folded into user state,
decided on, sunk) and how fast decisions did. Needs the local servers (``make up``) and the
local profile in the environment (``make bench`` exports it). Prints figures, asserts nothing.

Usage: ``python -m benchmarks.worker [--events N] [--users N]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaProducer

from promo.clickhouse import apply_migrations, connect_url
from promo.settings import REPO_ROOT, load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    settings = load_settings()
    suffix = uuid.uuid4().hex[:8]
    database = f"promo_bench_{suffix}"
    topics = {
        name: f"bench-{suffix}-{name}"
        for name in (
            "clickstream",
            "offers",
            "dead_letters",
            "decisions",
            "outcomes",
            "training",
            "models",
        )
    }
    env = {
        **os.environ,
        "PROMO_APP_ID": f"bench-{suffix}",
        "PROMO_WORKER_PORT": "6091",
        "PROMO_CLICKHOUSE_URL": settings.clickhouse_url.rsplit("/", 1)[0] + f"/{database}",
        **{f"PROMO_TOPIC_{name.upper()}": topic for name, topic in topics.items()},
    }
    client = connect_url(env["PROMO_CLICKHOUSE_URL"])
    apply_migrations(client, REPO_ROOT / "deploy" / "clickhouse")
    produced = _produce_backlog(
        settings.bootstrap_servers, topics["clickstream"], args.events, args.users
    )
    print(
        f"backlog: {args.events} events of {args.users} users produced at {produced:,.0f} events/s"
    )
    with tempfile.TemporaryDirectory() as workdir:
        log_path = Path(workdir) / "worker.log"
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "promo.cli", "worker"],
                env=env,
                cwd=workdir,
                stdout=log,
                stderr=log,
            )
        try:
            ready = _wait_for(lambda: b"[^Worker]: Ready" in log_path.read_bytes(), args.timeout)
            events_done = _wait_for(
                lambda: client.execute("SELECT count() FROM events")[0][0] >= args.events,
                args.timeout,
            )
            decisions = client.execute("SELECT count() FROM decisions")[0][0]
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    seconds = events_done - ready
    print(f"one worker: {args.events} events into ClickHouse in {seconds:.1f} s after ready")
    print(f"  {args.events / seconds:,.0f} events/s end to end ({decisions} decisions)")
    client.execute(f"DROP DATABASE IF EXISTS {database}")
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    admin.delete_topics([t for t in admin.list_topics() if suffix in t])
    admin.close()


def _produce_backlog(servers: list[str], topic: str, n: int, users: int) -> float:
    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=20, batch_size=256_000)
    t0 = int(time.time() * 1000) - 6 * 3_600_000  # six hours ago, one event every few ms
    start = time.perf_counter()
    for i in range(n):
        user = f"b{i % users:06d}"
        kind = ("view", "view", "view", "search", "add_to_cart")[i % 5]
        event: dict[str, object] = {
            "event_id": f"e{i}",
            "user_id": user,
            "ts": t0 + i * 5,
            "type": kind,
        }
        if kind == "search":
            event["query"] = "shoes"
        else:
            event.update(item_id=f"i{i % 300}", category=f"c{i % 8}", price=20.0 + i % 50)
            if kind == "add_to_cart":
                event["quantity"] = 1
        producer.send(topic, key=user.encode(), value=orjson.dumps(event))
    producer.flush()
    producer.close()
    return n / (time.perf_counter() - start)


def _wait_for(done: Callable[[], bool], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return time.monotonic()
        time.sleep(0.2)
    raise SystemExit(f"benchmark: not done after {timeout:.0f} s")


if __name__ == "__main__":
    main()

"""The whole loop against the real servers: a real ``promo worker`` subprocess between Tansu and
ClickHouse, fed by a plain Kafka producer, checked in ClickHouse (with FINAL) and on the offers
and models topics.

Every test owns its topics, app id (consumer group, changelog topic) and ClickHouse database,
and its workers are stopped at the end whatever happens. Event times sit a few hours before
now: inside every window, and never ahead of the Kafka timestamp (a producer stamps now).

Timeline of the restart test (event time, minutes after the base)::

    0    1    2    3    4        |SIGKILL, restart|        90
    view view view view view                               add_to_cart
    ^ decision 1                                           ^ decision 2: cooldown over;
                                                             its features count the 5 views
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit
from urllib.request import urlopen

import orjson
import pytest
from clickhouse_driver import Client
from jsonschema import Draft202012Validator
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

from agents.app import engine_config
from chaos.harness import (
    HOUR_MS,
    MINUTE_MS,
    Clickstream,
    PipelineNames,
    WorkerProcess,
    count_final,
    delete_topics,
    local_profile,
    poll,
    read_topic,
    run_migrations,
)
from promo.settings import Settings
from schemas import JSON_SCHEMA_DIR
from schemas.codec import encode
from schemas.training import TrainingExample
from streams.batch import DEAD_LETTER_PAYLOAD_BYTES
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
from streams.models import ModelSnapshot
from streams.policy import in_control_group

OFFER_SCHEMA = Draft202012Validator(json.loads((JSON_SCHEMA_DIR / "offer.schema.json").read_text()))
HOLDOUT_SALT = Settings.model_fields["holdout_salt"].default
CONTROL_SHARE = Settings.model_fields["control_share"].default
#: What the tests' expectations depend on, pinned against the caller's PROMO_* environment.
PINNED = {
    "PROMO_CONTROL_SHARE": str(CONTROL_SHARE),
    "PROMO_HOLDOUT_SALT": HOLDOUT_SALT,
    "PROMO_DECISION_COOLDOWN_MINUTES": "60",
    "PROMO_DECISION_TRIGGERS": "view,add_to_cart,cart_return",
    # Half the users explore, so an untrained model still sends offers to follow through.
    "PROMO_EXPLORE_SHARE": "0.5",
    "PROMO_ATTRIBUTION_WINDOW_HOURS": "48",
    "PROMO_MAX_FUTURE_SKEW_SECONDS": "300",
    "PROMO_OFFER_TTL_HOURS": "48",
    "PROMO_MODEL_PUBLISH_SECONDS": "2",  # the first snapshot within the test's time
}


@dataclass
class Pipeline:
    names: PipelineNames
    env: dict[str, str]
    ch: Client
    clickstream: Clickstream
    bootstrap_servers: list[str]
    workdir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(dict(self.env), self.workdir, f"worker-{len(self.workers) + 1}")
        self.workers.append(worker)
        worker.start().wait_ready(timeout=60)
        return worker

    def logs(self) -> str:
        return "\n".join(f"--- {w.name} ---\n{w.tail()}" for w in self.workers)

    def wait_count(
        self, table: str, expected: int, where: str = "1", timeout: float = 60.0, **params: Any
    ) -> int:
        """Poll ``count() FROM table FINAL`` until it reaches ``expected``, which it must equal."""
        n = poll(
            lambda: count_final(self.ch, table, where, params),
            lambda n: n >= expected,
            timeout=timeout,
            what=f"{table} WHERE {where} >= {expected}",
            context=self.logs,
        )
        assert n == expected, f"{table} WHERE {where}: {n} rows, expected {expected}"
        return n


@pytest.fixture
def pipeline(
    broker_url: str,
    bootstrap_servers: list[str],
    clickhouse_url: str,
    clickhouse_client: Client,
    unique_name: str,
    tmp_path: Path,
) -> Iterator[Pipeline]:
    names = PipelineNames(unique_name, database=f"promo_test_{unique_name}")
    env = {**os.environ, **local_profile(), **names.env(broker_url, clickhouse_url), **PINNED}
    run_migrations(env)  # the database exists (clickhouse_client made it); `promo migrate` fills it
    clickstream = Clickstream(bootstrap_servers, names.topic("clickstream"))
    p = Pipeline(names, env, clickhouse_client, clickstream, bootstrap_servers, tmp_path)
    try:
        yield p
    finally:
        for worker in p.workers:
            worker.stop()
        clickstream.close()
        delete_topics(bootstrap_servers, unique_name)


def base_time() -> int:
    # Three days back, so a test can close 48-hour windows with events still in the past.
    return int(time.time() * 1000) - 72 * HOUR_MS


def view(user: str, event_id: str, ts: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "type": "view",
        "item_id": "i1",
        "category": "shoes",
        "price": 40.0,
        **extra,
    }


def add_to_cart(user: str, event_id: str, ts: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "type": "add_to_cart",
        "item_id": "i1",
        "category": "shoes",
        "price": 40.0,
        "quantity": 1,
    }


def search(user: str, event_id: str, ts: int, query: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "type": "search",
        "query": query,
        **extra,
    }


def purchase(
    user: str, event_id: str, ts: int, total: float = 80.0, **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "ts": ts,
        "type": "purchase",
        "order_id": f"o-{event_id}",
        "order_total": total,
        **extra,
    }


def test_events_decisions_offers_outcomes_and_dead_letters(pipeline: Pipeline) -> None:
    p, base = pipeline, base_time()
    worker = p.start_worker()
    # The web server answers on localhost, and shows no table contents to anyone.
    web = f"http://127.0.0.1:{worker.env['PROMO_WORKER_PORT']}"
    assert urlopen(f"{web}/", timeout=5).status == 200
    for page in ("/table/", "/router/", "/graph/"):
        with pytest.raises(HTTPError) as refused:
            urlopen(f"{web}{page}", timeout=5)
        assert refused.value.code == 404, page
    users = [f"user-{n:03d}" for n in range(300)]
    buyers = users[::15]
    events = [view(u, f"{u}-view", base) for u in users]
    events += [add_to_cart(u, f"{u}-cart", base + MINUTE_MS) for u in users]
    events += [purchase(u, f"{u}-buy", base + 5 * MINUTE_MS) for u in buyers]
    sent = p.clickstream.send_all(events)

    bad: dict[str, tuple[bytes, str]] = {  # reason -> (raw value, key)
        "invalid_json": (b"{not json", "user-bad"),
        "not_an_object": (b"[1, 2]", "user-bad"),
        "unknown_event_type": (
            orjson.dumps({**view("user-bad", "b1", base), "type": "hover"}),
            "user-bad",
        ),
        "missing_field": (
            orjson.dumps({k: v for k, v in view("user-bad", "b2", base).items() if k != "price"}),
            "user-bad",
        ),
        "key_mismatch": (orjson.dumps(view("user-000", "b3", base)), "user-bad"),
        # 600 kB, not JSON: once a 1.4 MB dead letter the broker refused, stopping the worker.
        "too_large": (b"\x01not json " * 60_000, "user-bad"),
        "ts_too_old": (
            orjson.dumps(view("user-bad", "b5", int(time.time() * 1000) - 100 * 24 * HOUR_MS)),
            "user-bad",
        ),
        "ts_in_future": (
            orjson.dumps(view("user-bad", "b4", int(time.time() * 1000) + HOUR_MS)),
            "user-bad",
        ),
    }
    for raw, key in bad.values():
        p.clickstream.send(raw, key=key)
    p.clickstream.flush()

    # Every valid event stored once; every bad one a dead letter with its reason and bytes.
    p.wait_count("events", sent)
    p.wait_count("dead_letters", len(bad))
    rows = p.ch.execute("SELECT reason, raw_b64, key, source_topic FROM dead_letters FINAL")
    assert sorted(r[0] for r in rows) == sorted(bad)
    for reason, raw_b64, key, source_topic in rows:
        assert base64.b64decode(raw_b64) == bad[reason][0][:DEAD_LETTER_PAYLOAD_BYTES]
        assert (key, source_topic) == ("user-bad", p.names.topic("clickstream"))

    # One decision per user (the view; the cart add falls in the cooldown), control by hash.
    p.wait_count("decisions", len(users))
    decisions = p.ch.execute(
        "SELECT user_id, control, chosen_offer, policy_offer, offer_id, trigger, decision_id "
        "FROM decisions FINAL"
    )
    control = {u for u in users if in_control_group(u, salt=HOLDOUT_SALT, share=CONTROL_SHARE)}
    assert 0 < len(control) < len(users)
    assert {d[0] for d in decisions if d[1]} == control
    assert {d[5] for d in decisions} == {"view"}
    assert all(d[2] == "none" and d[4] == "" for d in decisions if d[1])
    decision_of = {d[0]: d[6] for d in decisions}
    offered = {d[4]: d for d in decisions if d[2] != "none"}
    assert offered, "no treatment decision chose an offer"
    assert all(d[2] == d[3] for d in decisions if not d[1])

    # Each cart add, a minute after its user's decision, was suppressed by the cool-down; a
    # control user's decision whose policy chose an offer, by the holdout.
    held_out = {d[6] for d in decisions if d[1] and d[3] != "none"}
    p.wait_count("suppressions", len(users) + len(held_out))
    rows = p.ch.execute("SELECT reason, trigger_event_id, decision_id FROM suppressions FINAL")
    assert sorted(r[1] for r in rows if r[0] == "cooldown") == sorted(f"{u}-cart" for u in users)
    assert {r[2] for r in rows if r[0] == "control"} == held_out

    # The offers topic holds exactly the offers the decisions name, each a valid contract.
    records = read_topic(p.bootstrap_servers, p.names.topic("offers"), count=len(offered))
    offers = [orjson.loads(value) for _, value in records]
    for (key, _), offer in zip(records, offers, strict=True):
        OFFER_SCHEMA.validate(offer)
        assert key == offer["user_id"].encode()
        assert offer["decision_id"] == decision_of[offer["user_id"]]
    assert sorted(o["offer_id"] for o in offers) == sorted(offered)

    # A purchase after a decision is a `purchase` outcome of that decision, control or not.
    p.wait_count("outcomes", len(buyers), "type = 'purchase'")
    outcome_rows = p.ch.execute(
        "SELECT decision_id, user_id, control FROM outcomes FINAL WHERE type = 'purchase'"
    )
    assert {(r[1], r[0]) for r in outcome_rows} == {(u, decision_of[u]) for u in buyers}
    assert {r[1] for r in outcome_rows if r[2]} == set(buyers) & control

    # Close the loop as the notification service and the shop would: show an offer, redeem it.
    offer = offers[0]
    user = offer["user_id"]
    p.clickstream.send(
        {
            "event_id": "shown-1",
            "user_id": user,
            "ts": base + 6 * MINUTE_MS,
            "type": "offer_shown",
            "offer_id": offer["offer_id"],
        }
    )
    p.clickstream.send(
        purchase(
            user,
            "redeem-1",
            base + 7 * MINUTE_MS,
            total=72.0,
            coupon_code=offer["coupon_code"],
            offer_id=offer["offer_id"],
        )
    )
    p.clickstream.flush()
    for kind in ("shown", "redeemed"):
        p.wait_count(
            "outcomes", 1, "decision_id = %(d)s AND type = %(t)s", d=offer["decision_id"], t=kind
        )
    [(discount, code)] = p.ch.execute(
        "SELECT discount, offer_code FROM outcomes FINAL WHERE type = 'redeemed'"
    )
    assert code == offer["offer_code"] and discount > 0

    # Windows close on the users' next events 49 h later: the purchases become labels, and the
    # learner publishes newer models on the models topic.
    p.clickstream.send_all(view(u, f"{u}-later", base + 49 * HOUR_MS) for u in [*buyers, user])
    snapshots = read_topic(p.bootstrap_servers, p.names.topic("models"), count=1, timeout=30)
    assert snapshots, "no model snapshot published"
    newest = max((ModelSnapshot.from_bytes(v) for _, v in snapshots), key=lambda s: s.version)
    assert newest.version >= 1 and newest.examples_seen >= 1


def test_searches_teach_the_published_query_model_and_decisions_log_interest(
    pipeline: Pipeline,
) -> None:
    p, base = pipeline, base_time()
    p.start_worker()
    users = [f"searcher-{n}" for n in range(6)]
    events: list[dict[str, Any]] = []
    for u in users:  # a search, then a view of socks a minute later: one example each
        events.append(search(u, f"{u}-s", base, "Wool socks"))
        events.append(view(u, f"{u}-v", base + MINUTE_MS, category="socks"))
    # A search the platform categorised is an example as it stands.
    events.append(search("tagged", "tagged-s", base, "wool socks", category="socks"))
    p.clickstream.send_all(events)

    def snapshots() -> list[ModelSnapshot]:
        records = read_topic(p.bootstrap_servers, p.names.topic("models"), count=50, timeout=2)
        return [ModelSnapshot.from_bytes(value) for _, value in records]

    published = poll(
        snapshots,
        lambda s: any(x.queries.examples >= len(users) + 1 for x in s),
        timeout=60,
        what="a snapshot that learned every search",
        context=p.logs,
    )
    newest = max(published, key=lambda s: s.queries.examples)
    assert newest.queries.examples == len(users) + 1
    assert newest.queries.categories("socks") == {"socks": 1.0}
    # Each view decided, and logged the category the user was drawn to.
    p.wait_count("decisions", len(users))
    assert p.ch.execute("SELECT DISTINCT interest_category FROM decisions FINAL") == [("socks",)]


def _metrics(web: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The worker's /metrics as {(sample name, sorted labels): value}."""
    text = urlopen(f"{web}/metrics", timeout=5).read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_operators_see_metrics_health_and_readiness(pipeline: Pipeline) -> None:
    p, base = pipeline, base_time()
    worker = p.start_worker()
    web = f"http://127.0.0.1:{worker.env['PROMO_WORKER_PORT']}"
    assert orjson.loads(urlopen(f"{web}/health", timeout=5).read()) == {"status": "ok"}
    users = [f"user-{n:03d}" for n in range(40)]
    events = [view(u, f"{u}-view", base) for u in users]
    events += [add_to_cart(u, f"{u}-cart", base + MINUTE_MS) for u in users[:10]]
    sent = p.clickstream.send_all(events)
    p.clickstream.send(b"{not json", key="user-bad")
    p.clickstream.flush()
    p.wait_count("decisions", len(users))
    p.wait_count("dead_letters", 1)

    # Ready once the partitions are taken over (it is deciding, so they are).
    deadline = time.monotonic() + 30
    while (status := _ready_status(web)) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200

    # Every row is in ClickHouse; a sink's insert is measured just after it returns, so the
    # scrape waits for the inserts' counts (sinks of events and decisions) to show it.
    p.wait_count("events", sent)

    def written(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> bool:
        tables = {dict(ls).get("table") for (n, ls), v in metrics.items() if v > 0}
        return {"events", "decisions"} <= tables

    seen = poll(lambda: _metrics(web), written, timeout=15, what="sink metrics", context=p.logs)

    def total(name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, ls), v in seen.items() if n == name and want <= set(ls))

    assert total("promo_events_total", type="view") == len(users)
    assert total("promo_events_total", type="add_to_cart") == 10
    assert total("promo_events_total") == sent
    assert total("promo_dead_letters_total", reason="invalid_json") == 1
    assert total("promo_decisions_total") == len(users)
    assert total("promo_decisions_total", arm="control") == sum(
        in_control_group(u, salt=HOLDOUT_SALT, share=CONTROL_SHARE) for u in users
    )
    assert total("promo_suppressions_total", reason="cooldown") == 10
    assert total("promo_decision_latency_seconds_count") == len(users)
    # Every decision was in ClickHouse before we looked: its insert was measured.
    assert total("promo_sink_rows_sum", table="decisions") >= len(users)
    assert total("promo_sink_write_seconds_count", table="events") >= 1
    assert total("promo_sink_failures_total") == 0

    # The sweep (every 5 s) measures the lag of the partitions the worker owns: all read.
    def lag() -> dict[str, float]:
        return {
            dict(ls)["partition"]: v
            for (n, ls), v in _metrics(web).items()
            if n == "promo_consumer_lag"
        }

    measured = poll(lag, bool, timeout=15, what="consumer lag", context=p.logs)
    assert set(measured.values()) == {0.0}, measured


def _ready_status(web: str) -> int:
    try:
        return int(urlopen(f"{web}/ready", timeout=5).status)
    except HTTPError as exc:
        return exc.code


def test_a_starting_worker_decides_with_the_newest_published_models(pipeline: Pipeline) -> None:
    p = pipeline
    topic = p.names.topic("models")
    admin = KafkaAdminClient(bootstrap_servers=p.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    actions = engine_config(Settings()).actions
    snapshot = ModelSnapshot.initial(actions, n_segments=6, seed=42)
    snapshot.version = 7  # as the learner publishes it
    producer = KafkaProducer(bootstrap_servers=p.bootstrap_servers)
    producer.send(topic, key=b"snapshot", value=snapshot.to_bytes()).get(timeout=30)
    producer.close()
    worker = p.start_worker()
    # Read before the worker starts, not by its follower later: a restarted worker must decide
    # from its first event with what its predecessor decided with.
    assert "starting with published models v7" in worker.log(), worker.tail()
    assert "skipping model snapshot" not in worker.log()


def test_a_restarted_learner_continues_from_the_newest_snapshot_and_learns_each_label_once(
    pipeline: Pipeline,
) -> None:
    p, n = pipeline, 600
    p.env.update(PROMO_MODEL_PUBLISH_EVERY="20", PROMO_MODEL_PUBLISH_SECONDS="0.5")
    actions = engine_config(Settings()).actions
    rng = random.Random(7)
    labels = [
        encode(
            TrainingExample(
                f"d-{i}",
                base_time() + i,
                tuple(rng.uniform(0, 5) for _ in FEATURE_NAMES),
                rng.choice(actions),
                rng.randint(0, 1),
                0,
            )
        )
        for i in range(n)
    ]
    training = Clickstream(p.bootstrap_servers, p.names.topic("training"))

    def send_labels() -> None:  # ~100 a second: labels keep coming while the learner dies
        for i in range(0, n, 10):
            for value in labels[i : i + 10]:
                training.send(value, key="d")
            training.flush()
            time.sleep(0.1)

    def snapshots() -> list[ModelSnapshot]:
        topic = p.names.topic("models")
        records = read_topic(p.bootstrap_servers, topic, count=n, timeout=2)
        return [ModelSnapshot.from_bytes(value) for _, value in records]

    first = p.start_worker()
    sender = threading.Thread(target=send_labels)
    sender.start()
    try:
        poll(snapshots, lambda s: any(x.examples_seen >= 150 for x in s), what="150 learned")
        # SIGKILL: the labels learned (and published) since the last commit come again.
        first.kill()
        second = p.start_worker()
    finally:
        sender.join()
        training.close()
    published = poll(
        snapshots, lambda s: bool(s) and s[-1].trained_to == n - 1, timeout=90, context=p.logs
    )
    assert published[-1].examples_seen == n
    replayed = sum(int(k) for k in re.findall(r"(\d+) already learned", second.log()))
    assert replayed > 0, "no label came again: the kill did not test a take-over"
    # In the order published: every snapshot newer and at least as trained as the one before.
    progress = [(s.version, s.trained_to, s.examples_seen) for s in published]
    assert all(
        a[0] < b[0] and a[1] <= b[1] and a[2] <= b[2] for a, b in itertools.pairwise(progress)
    ), progress


def test_restarted_worker_resumes_with_per_user_state(pipeline: Pipeline) -> None:
    p, base, user, n_views = pipeline, base_time(), "user-restart", 5
    # Caps high enough that the first decision, whatever it chose, cannot block the second.
    p.env.update(PROMO_MAX_OFFERS_PER_DAY="10", PROMO_MAX_OFFERS_PER_WEEK="10")
    first = p.start_worker()
    p.clickstream.send_all(view(user, f"v-{i}", base + i * MINUTE_MS) for i in range(n_views))
    p.wait_count("events", n_views)
    p.wait_count("decisions", 1)
    # Killed without waiting for the offset commit: the next worker may be handed the views
    # again (at-least-once) on top of the state it recovers, and must not count them twice.
    first.kill()

    p.start_worker()
    p.clickstream.send_all([add_to_cart(user, "cart-90", base + 90 * MINUTE_MS)])
    p.wait_count("decisions", 2)
    [(trigger, features)] = p.ch.execute(
        "SELECT trigger, features FROM decisions FINAL WHERE trigger_event_id = 'cart-90'"
    )
    assert trigger == "add_to_cart"
    vector = dict(zip(FEATURE_NAMES, features, strict=True))
    assert vector["views_24h"] == n_views  # counted by the worker that was killed
    assert vector["cart_adds_24h"] == 1
    assert vector["hours_since_view"] == pytest.approx((90 - (n_views - 1)) / 60, abs=0.01)
    assert features[FEATURE_INDEX["views_30d"]] == n_views


def test_a_restarted_worker_closes_the_windows_of_users_who_never_return(
    pipeline: Pipeline,
) -> None:
    # Only the sweep closes their windows, and a restarted worker knows of them only from
    # what changelog recovery applied to its table (it does not scan the table).
    p, base, users = pipeline, base_time(), 20
    first = p.start_worker()
    p.clickstream.send_all(view(f"gone-{i}", f"gone-v{i}", base) for i in range(users))
    p.wait_count("decisions", users)  # one window opened each
    first.stop()

    p.start_worker()
    # Other users, 50 hours on: every partition's clock passes the windows' ends.
    p.clickstream.send_all(
        view(f"later-{i}", f"later-v{i}", base + 50 * HOUR_MS) for i in range(10 * users)
    )
    p.wait_count("outcomes", users, "type = 'no_conversion' AND substring(user_id, 1, 5) = 'gone-'")


def test_redelivered_event_is_stored_once(pipeline: Pipeline) -> None:
    p, base, user = pipeline, base_time(), "user-twice"
    p.start_worker()
    viewed_twice = view(user, "v-1", base)
    bought_twice = purchase(user, "p-1", base + MINUTE_MS)
    sentinel = purchase(user, "p-2", base + 2 * MINUTE_MS)
    # Same event_id, same bytes, two messages: a producer's retry after a lost ack.
    p.clickstream.send_all([viewed_twice, viewed_twice, bought_twice, bought_twice, sentinel])
    assert len(read_topic(p.bootstrap_servers, p.names.topic("clickstream"), count=5)) == 5

    # One user, one partition: once the sentinel's rows are in, both copies were written.
    # (Each table's, that is: the sinks keep no order across topics.)
    p.wait_count("events", 1, "event_id = 'p-2'")
    p.wait_count("outcomes", 1, "source_event_id = 'p-2'")
    p.wait_count("decisions", 1)
    assert count_final(p.ch, "events", "event_id = 'v-1'") == 1
    assert count_final(p.ch, "events", "event_id = 'p-1'") == 1
    assert count_final(p.ch, "events") == 3
    assert count_final(p.ch, "decisions") == 1
    assert count_final(p.ch, "outcomes", "source_event_id = 'p-1' AND type = 'purchase'") == 1


def test_a_recorded_history_replays_through_the_pipeline(pipeline: Pipeline) -> None:
    # A shop's log from a year ago: older than the workers' horizon, so it must be shifted.
    p, year_ago = pipeline, base_time() - 365 * 24 * HOUR_MS
    users = [f"user-{n:02d}" for n in range(20)]
    events = [view(u, f"{u}-view", year_ago) for u in users]
    events += [add_to_cart(u, f"{u}-cart", year_ago + MINUTE_MS) for u in users]
    history = p.workdir / "history.jsonl"
    history.write_bytes(b"\n".join([*map(orjson.dumps, events), b"{not json"]) + b"\n")
    p.start_worker()
    replayed = subprocess.run(
        [sys.executable, "-m", "promo.cli", "replay", str(history), "--shift-to-now"],
        env=p.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 41 messages" in replayed.stdout, replayed.stdout
    assert "1 not readable as events" in replayed.stdout
    p.wait_count("events", len(events))
    p.wait_count("dead_letters", 1, "reason = 'invalid_json'")
    p.wait_count("decisions", len(users))  # the decision points of a year ago, decided now
    [(oldest,)] = p.ch.execute("SELECT min(ts) FROM events FINAL")
    assert time.time() - oldest.timestamp() < 2 * 24 * 3600  # shifted to the last days


def test_a_second_run_of_older_traffic_is_attributed_like_the_first(pipeline: Pipeline) -> None:
    """A replay or backfill of older days, after a run that got further, closes its windows
    on its own event time: the same traffic gets the same outcomes. (Under a watermark that
    never goes back, the second run's windows closed seconds after they opened.)"""
    p, base, users = pipeline, base_time(), 20

    def traffic(run: str, start: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        decided = [
            event
            for i in range(users)
            for event in (
                view(f"{run}-{i}", f"{run}-v{i}", start),
                add_to_cart(f"{run}-{i}", f"{run}-c{i}", start + MINUTE_MS),
            )
        ]
        bought = [
            purchase(f"{run}-{i}", f"{run}-p{i}", start + 2 * HOUR_MS) for i in range(0, users, 2)
        ]
        return decided, bought

    def purchases(run: str) -> int:
        return count_final(
            p.ch, "outcomes", f"type = 'purchase' AND substring(user_id, 1, 3) = '{run}-'"
        )

    p.start_worker()
    decided, bought = traffic("r1", base)
    # Run 1's users come back 50 h later: its clock passes every window it opened.
    back = [view(f"r1-{i}", f"r1-back{i}", base + 50 * HOUR_MS) for i in range(users)]
    p.clickstream.send_all([*decided, *bought, *back])
    p.wait_count("outcomes", users // 2, "type = 'purchase'")
    p.wait_count("outcomes", users // 2, "type = 'no_conversion'")

    # Run 2: the same traffic a day older. Its decisions, then, after more than one sweep
    # (every 5 s), its purchases.
    decided, bought = traffic("r2", base - 24 * HOUR_MS)
    p.clickstream.send_all(decided)
    p.wait_count("decisions", 3 * users)
    time.sleep(7)
    p.clickstream.send_all(bought)
    p.wait_count("events", len(bought), "type = 'purchase' AND substring(user_id, 1, 3) = 'r2-'")
    poll(lambda: purchases("r2"), lambda n: n >= users // 2, timeout=30, what="run 2's purchases")
    assert purchases("r2") == purchases("r1") == users // 2
    assert (
        count_final(p.ch, "outcomes", "type = 'no_conversion' AND substring(user_id, 1, 3) = 'r2-'")
        == 0
    )


def _exits(worker: WorkerProcess, timeout: float = 60.0) -> int:
    """The worker's exit code once it stopped by itself (fails if it is still running)."""
    assert worker.process is not None
    try:
        return worker.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{worker.name} still running:\n{worker.tail()}") from None


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("PROMO_CLICKHOUSE_PASSWORD", "not-the-password-42", "PROMO_CLICKHOUSE_PASSWORD"),
        ("PROMO_CLICKHOUSE_URL", "clickhouse://nobody@{host}/promo", "PROMO_CLICKHOUSE_URL (user)"),
    ],
)
def test_bad_clickhouse_credentials_stop_the_worker_naming_the_setting(
    pipeline: Pipeline, setting: str, value: str, named: str
) -> None:
    p = pipeline
    host = urlsplit(p.env["PROMO_CLICKHOUSE_URL"]).netloc.split("@")[-1]
    p.env[setting] = value.format(host=host)
    worker = WorkerProcess(dict(p.env), p.workdir, "bad-credentials").start()
    p.workers.append(worker)
    assert _exits(worker) == 2
    log = worker.log()
    assert f"configuration error: {named}" in log
    assert "not-the-password-42" not in log and "Stack trace" not in log


def test_a_schema_behind_stops_the_worker_before_and_while_it_runs(pipeline: Pipeline) -> None:
    p = pipeline
    # At start-up: a migration recorded as not applied.
    p.ch.execute("ALTER TABLE schema_migrations DELETE WHERE version = 5")
    poll(
        lambda: count_final(p.ch, "schema_migrations", "version = 5"),
        lambda n: n == 0,
        what="the mutation",
    )
    worker = WorkerProcess(dict(p.env), p.workdir, "schema-behind").start()
    p.workers.append(worker)
    assert _exits(worker) == 2
    assert "0005_suppressions.sql not applied): run `promo migrate`" in worker.log()

    # While running: a table gone under a worker that started well. Its sink stops it,
    # naming the cure, instead of retrying forever; the rows stay unacknowledged.
    run_migrations(p.env)
    p.start_worker()
    p.ch.execute("DROP TABLE suppressions")
    base = base_time()
    p.clickstream.send_all(
        [view("user-x", "x-v", base), add_to_cart("user-x", "x-c", base + MINUTE_MS)]
    )
    assert _exits(p.workers[-1]) != 0
    assert "run `promo migrate`" in p.workers[-1].log()


def test_decisions_and_offers_flow_while_clickhouse_is_down(pipeline: Pipeline) -> None:
    """The sinks wait for ClickHouse on their own consumer; the hot path does not. A worker
    stopped during the outage exits within its grace period (its batch stays uncommitted)."""
    p, base = pipeline, base_time()
    database = urlsplit(p.env["PROMO_CLICKHOUSE_URL"]).path
    p.env["PROMO_CLICKHOUSE_URL"] = f"clickhouse://default@127.0.0.1:9{database}"  # nobody
    worker = p.start_worker()
    assert "starting anyway, the sinks will retry" in worker.log()
    waves = [[f"user-{w}-{n:04d}" for n in range(3000)] for w in range(3)]
    p.clickstream.send_all([view(u, f"{u}-view", base) for u in waves[0]])
    # The sinks wait for ClickHouse, retrying the batch they hold...
    poll(worker.log, lambda log: "retrying in" in log, timeout=60, what="a sink retrying")
    # ... and the hot path goes on: more events than a stalled Faust agent's buffer (4,096)
    # holds, each user's decision on its way.
    for wave in waves[1:]:
        p.clickstream.send_all([view(u, f"{u}-view", base) for u in wave])
    expected = sum(len(w) for w in waves)
    decisions = read_topic(p.bootstrap_servers, p.names.topic("decisions"), count=expected)
    assert len(decisions) >= expected

    started = time.monotonic()
    worker.stop(grace=15.0)
    assert worker.process is not None and worker.process.returncode != -9  # not SIGKILLed
    assert time.monotonic() - started < 15.0


def test_sinks_apart_write_what_workers_that_only_decide_decided(pipeline: Pipeline) -> None:
    """``PROMO_SINKS_IN_WORKER=false``: the worker writes nothing to ClickHouse; a ``promo
    sinks`` process writes every event and decision, serves its metrics, and stops on SIGTERM
    with exit code 0."""
    p, base = pipeline, base_time()
    p.env["PROMO_SINKS_IN_WORKER"] = "false"
    p.start_worker()
    users = [f"user-apart-{n:02d}" for n in range(20)]
    p.clickstream.send_all([view(u, f"{u}-view", base) for u in users])
    decisions = read_topic(p.bootstrap_servers, p.names.topic("decisions"), count=len(users))
    assert len(decisions) == len(users)
    time.sleep(3)  # longer than the sinks' flush: an in-worker sink would have written by now
    assert count_final(p.ch, "events") == 0

    sinks = WorkerProcess(dict(p.env), p.workdir, "sinks", args=("-m", "promo.cli", "sinks"))
    p.workers.append(sinks)
    sinks.start()
    p.wait_count("events", len(users))
    p.wait_count("decisions", len(users))
    samples = _metrics(f"http://127.0.0.1:{sinks.env['PROMO_WORKER_PORT']}")
    assert samples[("promo_sink_rows_count", (("table", "events"),))] >= 1

    started = time.monotonic()
    sinks.stop(grace=15.0)
    assert sinks.process is not None and sinks.process.returncode == 0, sinks.tail()
    assert time.monotonic() - started < 15.0

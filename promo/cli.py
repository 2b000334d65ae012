"""``promo``: the one command line of promo-stream (worker, simulator, report, operations).

Settings come from ``PROMO_*`` environment variables (``promo settings`` prints them), over
a profile file when one is named (``--env-file``, else ``PROMO_ENV_FILE``); a bad value stops
the command with the variable's name.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from promo import logs, progress
from promo.settings import ENV_FILE_VARIABLE, Settings, env_file_from, load_settings
from simulator.policies import POLICY_NAMES
from streams.errors import ConfigError, PromoError, ServerUnavailable

EPILOG = (
    "Settings: PROMO_* environment variables, over the file --env-file (or PROMO_ENV_FILE) "
    "names; `promo settings` lists them with their values."
)
#: The local servers' profile (`make up`), relative to the project tree.
LOCAL_PROFILE = "deploy/local/promo.env"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logs.quiet_chatty_clients()
    settings = None
    try:
        settings = load_settings(args.env_file)
        logs.configure(settings.log_format)
        command: Callable[[Settings, argparse.Namespace], int] = args.command
        return command(settings, args)
    except ConfigError as exc:
        print(f"promo: configuration error: {exc}", file=sys.stderr)
        return 2
    except ServerUnavailable as exc:
        print(f"promo: {exc}{_local_profile_hint(settings, args)}", file=sys.stderr)
        return 1
    except PromoError as exc:
        print(f"promo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _local_profile_hint(settings: Settings | None, args: argparse.Namespace) -> str:
    """A server did not answer at its default address and no profile was read: most likely
    the local servers (elsewhere) without their profile, so say how to read it."""
    if settings is None or env_file_from(args.env_file) is not None:
        return ""
    fields = Settings.model_fields
    if (settings.broker_url, settings.clickhouse_url) != (
        fields["broker_url"].default,
        fields["clickhouse_url"].default,
    ):
        return ""
    return (
        f"\n  for the local servers (make up) read their profile: "
        f"promo --env-file {LOCAL_PROFILE} {args.command_name}; "
        f"or once per shell: export {ENV_FILE_VARIABLE}=$PWD/{LOCAL_PROFILE}"
    )


def _add_env_file(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--env-file",
        type=Path,
        default=default,
        metavar="PATH",
        help=f"read PROMO_* settings from this file of KEY=value lines (the local servers: "
        f"{LOCAL_PROFILE}); variables set in the environment win over it. "
        f"Default: the file {ENV_FILE_VARIABLE} names, else none",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promo",
        description="Real-time promotion engine: "
        "clickstream -> features -> models -> offers -> ClickHouse.",
        epilog=EPILOG,
    )
    _add_env_file(parser, None)
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(
        name: str, fn: Callable[[Settings, argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, epilog=EPILOG)
        p.set_defaults(command=fn, command_name=name)
        # Also after the command; SUPPRESS keeps a value given before it.
        _add_env_file(p, argparse.SUPPRESS)
        return p

    command(
        "worker",
        _worker,
        "Run a Faust worker in the foreground until SIGTERM: validates the clickstream, keeps "
        "per-user features, decides and sends offers, learns, and sinks everything to ClickHouse. "
        "Start several (with different PROMO_WORKER_PORT) to share the partitions.",
    )
    command(
        "sinks",
        _sinks,
        "Write every topic to ClickHouse in a process of its own, until SIGTERM: for workers "
        "run with PROMO_SINKS_IN_WORKER=false. Start several to share the partitions.",
    )
    command(
        "migrate",
        _migrate,
        "Create the ClickHouse database, tables and views (versioned, idempotent).",
    )
    command(
        "topics", _topics, "Create the Kafka topics that are missing (the worker does this too)."
    )
    sim = command(
        "simulate",
        _simulate,
        "Run the shop simulator: users browse, fill carts and buy on the clickstream topic, read "
        "their offers like the notification service would, and respond; writes ground truth to "
        "ClickHouse (sim_truth) and injects a few malformed messages.",
    )
    sim.add_argument("--users", type=int, default=3000, help="simulated users (default 3000)")
    sim.add_argument(
        "--days", type=float, default=3.0, help="simulated days of traffic (default 3)"
    )
    sim.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    sim.add_argument(
        "--rate", type=float, default=1500.0, help="max events per second sent (default 1500)"
    )
    sim.add_argument(
        "--malformed-share",
        type=float,
        default=0.005,
        help="extra malformed messages (default 0.005)",
    )
    sim.add_argument(
        "--tail-seconds", type=float, default=15.0, help="keep reading offers this long at the end"
    )
    sim.add_argument(
        "--no-truth", action="store_true", help="do not write ground truth to ClickHouse"
    )
    rp = command(
        "replay",
        _replay,
        "Backtest on a shop's own history: send a recorded JSON-lines file of clickstream "
        "events (the event contract), or a CSV file read by a column mapping, to the "
        "clickstream topic, keyed by user, in file order; "
        "the workers decide, attribute and store as for live traffic. Lines that are not "
        "events are sent as they are and become dead letters.",
    )
    rp.add_argument(
        "file",
        type=Path,
        help="JSON lines, one clickstream event per line; or CSV (a .csv file, or --columns)",
    )
    rp.add_argument(
        "--columns",
        help="CSV: the column of each event field, e.g. "
        "user_id=visitorid,ts=timestamp,type=event,item_id=itemid (user_id, ts, type required)",
    )
    rp.add_argument(
        "--types",
        default="",
        help="CSV: the file's event names as the contract's, e.g. addtocart=add_to_cart",
    )
    rp.add_argument(
        "--set",
        default="",
        dest="constants",
        help="CSV: fields with one value for every row, e.g. category=unknown,quantity=1",
    )
    rp.add_argument(
        "--ts-unit",
        default="ms",
        help="CSV: how ts is written: ms or s since the epoch, or iso (UTC if no zone)",
    )
    rp.add_argument(
        "--shift-to-now",
        action="store_true",
        help="move every event by whole days so that the newest lands within the last day "
        "(the workers reject events older than PROMO_MAX_EVENT_AGE_DAYS)",
    )
    rp.add_argument("--rate", type=float, help="max events per second (default: no limit)")
    rp.add_argument(
        "--speed",
        type=float,
        help="send at the recorded pace, this many times faster (default: as fast as possible)",
    )
    wait = command(
        "wait-drained",
        _wait_drained,
        "Wait until the workers have caught up: every event of the latest simulated run is in "
        "ClickHouse and the row counts have stopped changing.",
    )
    wait.add_argument(
        "--timeout", type=float, default=180.0, help="give up after this many seconds"
    )
    wait.add_argument(
        "--quiet-seconds", type=float, default=10.0, help="how long counts must stay still"
    )
    ev = command(
        "evaluate",
        _evaluate,
        "Compare policies on one simulated shop, in process: the learned policy, no offers, "
        "random, propensity targeting, an observable oracle and the full oracle, each against "
        "the truth (common random numbers) and against what an analyst would estimate from its "
        "logs in ClickHouse.",
    )
    ev.add_argument("--users", type=int, default=20_000, help="simulated users (default 20000)")
    ev.add_argument(
        "--days", type=float, default=14.0, help="simulated days of decisions (default 14)"
    )
    ev.add_argument(
        "--warmup-days",
        type=float,
        default=7.0,
        help="days of history before the first decision: the analysts' pre-period (default 7)",
    )
    ev.add_argument("--seed", type=int, default=101, help="random seed (default 101)")
    ev.add_argument(
        "--decisions-out",
        type=Path,
        metavar="DIR",
        help="also write each policy's decisions, with their window's outcome and the user's "
        "true response type, to DIR/<policy>.jsonl (a diagnosis: where a policy earns)",
    )
    ev.add_argument(
        "--period-days",
        type=float,
        default=7.0,
        help="the truth is also split into periods of this many deciding days (default 7)",
    )
    ev.add_argument(
        "--policies",
        default=",".join(POLICY_NAMES),
        help=f"comma-separated, among {', '.join(POLICY_NAMES)}, and each but none with "
        "_ungated: the same with the abuse gate off, and cell_oracle: the best action of "
        "each of the learner's cells by the truth (default all, no _ungated or cell_oracle)",
    )
    ev.add_argument(
        "--no-sql", action="store_true", help="skip ClickHouse: no server needed, no SQL estimates"
    )
    ev.add_argument(
        "--coupon-hunters",
        type=float,
        default=0.0,
        help="share of users who are coupon hunters (default 0: the population of before)",
    )
    ev.add_argument(
        "--casual-code-use",
        type=float,
        default=0.0,
        help="chance that another user pays with a public coupon code when holding none of "
        "ours (default 0)",
    )
    ev.add_argument(
        "--complements",
        action="store_true",
        help="a shop whose categories are bought together in pairs, as bundle rules find "
        "(default: tastes independent across categories)",
    )
    ev.add_argument("--json", action="store_true", help="print the full result as JSON")
    report = command(
        "report",
        _report,
        "Print the evaluation: treatment vs control, per offer, segment, policy version.",
    )
    report.add_argument(
        "--margin", type=float, default=None, help="gross margin (default PROMO_GROSS_MARGIN)"
    )
    report.add_argument(
        "--html",
        type=Path,
        default=None,
        metavar="PATH",
        help="also write the report with its charts as one self-contained HTML file (offline)",
    )
    rules = command(
        "rules",
        _rules,
        "Count which categories are bought together (association rules over the purchases in "
        "ClickHouse), store them in bundle_rules and publish them to the workers, for offers "
        'with "category": "complement".',
    )
    rules.add_argument(
        "--every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="repeat every SECONDS until stopped (default: once)",
    )
    offers = command(
        "offers", _offers, "Print offers from the offers topic, one JSON object per line."
    )
    offers.add_argument("--limit", type=int, default=5)
    dead = command(
        "dead-letters", _dead_letters, "Print rejected clickstream messages with their reasons."
    )
    dead.add_argument("--limit", type=int, default=10)
    bench = command(
        "bench",
        _bench,
        "Measure every speed figure on the local servers and print them as one JSON object: "
        "the transport and framework ceilings, the full pipeline with one and two workers, "
        "CPU per event and per stage, latency at half load, state bytes per user, the memory "
        "of a million users' states. Minutes, and it loads the servers: not part of the tests.",
    )
    bench.add_argument(
        "--events",
        type=int,
        default=None,
        help="backlog events (default: sized for about 8 minutes on 2 cores)",
    )
    bench.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    command("settings", _settings, "Print the effective settings (secrets masked).")
    return parser


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from agents.app import create_app, engine_config, run_worker
    from promo.kafka_io import ensure_topics, latest_snapshot
    from streams.models import ModelSnapshot

    config = engine_config(settings)  # a bad catalogue fails here, before any connection
    if settings.sinks_in_worker:  # else it never touches ClickHouse: no fault there stops it
        _check_clickhouse(settings)
    # The newest published models, so that a restarted worker decides as its predecessor did.
    snapshot = latest_snapshot(settings, ModelSnapshot.layout_for(config.actions))
    if snapshot is not None:
        logging.getLogger("promo").info("starting with published models v%d", snapshot.version)
    promo = create_app(settings, snapshot)
    created = ensure_topics(settings, promo.topics.partitions())
    if created:
        logging.getLogger("promo").info("created topics %s", ", ".join(created))
    run_worker(promo.app, settings)
    return 0


def _sinks(settings: Settings, args: argparse.Namespace) -> int:
    from agents import sinks_apart

    _check_clickhouse(settings)
    return sinks_apart.run(settings)


def _check_clickhouse(settings: Settings) -> None:
    """Before the sinks start: bad credentials or a schema behind stop the program here,
    named. An outage does not: Kafka holds what the sinks have not written, and they retry."""
    from promo.clickhouse import ClickHouseUnavailable, check_schema

    try:
        check_schema(settings)
    except ClickHouseUnavailable as exc:
        logging.getLogger("promo").warning("%s; starting anyway, the sinks will retry", exc)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from promo.clickhouse import apply_migrations, connect

    applied = apply_migrations(connect(settings), settings.clickhouse_ddl_dir)
    print(f"applied {', '.join(applied)}" if applied else "ClickHouse schema is up to date")
    return 0


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    from agents.topics import Topics
    from promo.kafka_io import ensure_topics

    topics = Topics.declare(faust.App(settings.app_id, broker=settings.broker_url), settings)
    created = ensure_topics(settings, topics.partitions())
    print(f"created {', '.join(created)}" if created else "all topics exist")
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from simulator.runner import SimulationConfig, run_simulation

    if args.days >= settings.max_event_age_days:
        # Sim time ends an hour before now: its first days would be older than the horizon.
        raise ConfigError(
            f"promo simulate --days {args.days:g}: the workers reject events older than "
            f"PROMO_MAX_EVENT_AGE_DAYS={settings.max_event_age_days}; raise it first"
        )
    config = SimulationConfig.from_settings(
        settings,
        clickhouse_url=None if args.no_truth else settings.clickhouse_url,
        users=args.users,
        days=args.days,
        seed=args.seed,
        max_events_per_second=args.rate,
        malformed_share=args.malformed_share,
        tail_seconds=args.tail_seconds,
    )
    with progress.bar(total=args.days * 24, unit="h", desc="simulated") as simulated:
        summary = run_simulation(config, on_progress=simulated.update)
    print(summary.format())
    return 0


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from promo import replay
    from promo.kafka_io import BrokerUnavailable
    from promo.replay_csv import CsvMapping, read_csv

    if not args.file.is_file():
        raise PromoError(f"promo replay: no such file: {args.file}")
    for name in ("rate", "speed"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise PromoError(f"promo replay --{name}: must be positive")
    if args.columns is not None or args.file.suffix.lower() == ".csv":
        if not args.columns:
            raise PromoError("promo replay: a CSV file needs --columns (see --help)")
        mapping = CsvMapping.parse(
            columns=args.columns, types=args.types, constants=args.constants, ts_unit=args.ts_unit
        )

        def lines() -> Iterator[bytes]:
            return read_csv(args.file, mapping)
    else:

        def lines() -> Iterator[bytes]:
            return replay.read_lines(args.file)

    total = sum(1 for _ in lines())  # and a CSV mapping's columns checked before sending
    shift = 0
    if args.shift_to_now:
        latest = replay.latest_ts(lines())
        if latest is not None:
            shift = replay.shift_to_now(latest, int(time.time() * 1000))
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, linger_ms=5, **settings.kafka_options()
        )
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"no Kafka broker at {settings.broker_url} (PROMO_BROKER_URL)"
        ) from exc
    topic = settings.topic_clickstream
    failures: list[BaseException] = []

    replayed = progress.bar(total=total, unit="events", desc="replayed")

    def send(message: replay.ReplayMessage) -> None:
        producer.send(topic, key=message.key, value=message.value).add_errback(failures.append)
        replayed.update()

    try:
        messages = (replay.to_message(line, shift) for line in lines())
        summary = replay.replay(messages, send, rate=args.rate, speed=args.speed)
        producer.flush(timeout=60)
    finally:
        replayed.close()
        producer.close(timeout=30)
    if failures:
        raise PromoError(f"{len(failures)} messages to {topic!r} failed; first: {failures[0]!r}")
    summary.shift_days = shift // replay.DAY_MS
    print(summary.format())
    return 0


def _wait_drained(settings: Settings, args: argparse.Namespace) -> int:
    from promo.clickhouse import connect

    client = connect(settings)
    # A pause is not the end (a worker recovering its table pauses too): first wait until every
    # event of the latest simulated run is in ClickHouse, then until the counts stay still.
    runs = client.execute(
        "SELECT run_id, events_sent FROM sim_runs FINAL ORDER BY started_at DESC LIMIT 1"
    )
    run_id, expected = runs[0] if runs else ("", 0)
    query = (
        "SELECT (SELECT uniqExact(event_id) FROM events WHERE event_id LIKE %(run)s), "
        "(SELECT count() FROM events), (SELECT count() FROM decisions), "
        "(SELECT count() FROM outcomes), (SELECT count() FROM dead_letters)"
    )
    deadline = time.monotonic() + args.timeout
    last, still_since = None, time.monotonic()
    while time.monotonic() < deadline:
        counts = client.execute(query, {"run": f"{run_id}-%"})[0]
        if counts != last:
            last, still_since = counts, time.monotonic()
        elif counts[0] >= expected and time.monotonic() - still_since >= args.quiet_seconds:
            print(
                f"drained: events={counts[1]} decisions={counts[2]} "
                f"outcomes={counts[3]} dead_letters={counts[4]}"
            )
            return 0
        time.sleep(1.0)
    print(
        f"promo: not drained after {args.timeout:.0f} s: {last[0] if last else 0} of {expected} "
        f"events of run {run_id} in ClickHouse; see the worker logs",
        file=sys.stderr,
    )
    return 1


def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from agents.app import engine_config
    from promo.evaluation_store import sql_estimate
    from simulator.closed_loop import LoopResult
    from simulator.evaluate import EvaluationConfig, evaluate, format_summary, simulated_hours

    try:
        config = EvaluationConfig(
            engine=engine_config(settings),
            users=args.users,
            days=args.days,
            warmup_days=args.warmup_days,
            seed=args.seed,
            policies=tuple(p.strip() for p in args.policies.split(",") if p.strip()),
            n_segments=settings.n_segments,
            model_seed=settings.model_seed,
            coupon_hunters=args.coupon_hunters,
            casual_code_use=args.casual_code_use,
            complements=args.complements,
            rules_days=settings.rules_days,
            rules_min_orders=settings.rules_min_orders,
            period_days=args.period_days,
        )
    except ValueError as exc:
        raise ConfigError(f"promo evaluate: {exc}") from None
    # On stderr, and only on a terminal: --json's stdout stays one JSON object.
    with progress.bar(total=simulated_hours(config), unit="h", desc="simulated") as simulated:

        def estimate(policy: str, run: LoopResult) -> dict[str, Any]:
            simulated.set_description(f"SQL estimate of {policy}")  # after the simulation
            return sql_estimate(settings, policy, run)

        on_progress = None if simulated.disable else simulated.update
        result = evaluate(
            config, None if args.no_sql else estimate, on_progress, args.decisions_out
        )
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_summary(result))
    return 0


def _report(settings: Settings, args: argparse.Namespace) -> int:
    from promo.clickhouse import connect
    from promo.report import format_report
    from promo.report_figures import read_evaluation

    margin = args.margin if args.margin is not None else settings.gross_margin
    evaluation = read_evaluation(
        connect(settings),
        gross_margin=margin,
        catalogue=settings.catalogue(),
        daily_budget=settings.daily_budget,
        fairness_max_ratio=settings.fairness_max_ratio,
    )
    print(format_report(evaluation))
    if args.html is not None:
        from promo.report_html import write_html  # Plotly loads only for the HTML report

        path = write_html(evaluation, args.html).resolve()
        print(f"HTML report (opens offline in a browser): {path}")
    return 0


def _rules(settings: Settings, args: argparse.Namespace) -> int:
    from promo.bundle_rules import compute_rules, publish_rules
    from promo.clickhouse import connect

    if args.every is not None and args.every <= 0:
        raise ConfigError(f"promo rules: --every must be positive, got {args.every}")
    client = connect(settings)
    while True:
        rules = compute_rules(client, settings.rules_days, settings.rules_min_orders)
        if rules is None:
            print("no purchases in ClickHouse yet: no rules")
        else:
            publish_rules(settings, rules)
            print(
                f"rules v{rules.version}: {len(rules.rules)} rules from {rules.baskets} orders, "
                f"stored in bundle_rules and sent to {settings.topic_rules}"
            )
        if args.every is None:
            return 0
        time.sleep(args.every)


def _offers(settings: Settings, args: argparse.Namespace) -> int:
    return _print_topic(
        settings,
        settings.topic_offers,
        args.limit,
        "offers",
        lambda value: [value.decode("utf-8", "replace")],
    )


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    return _print_topic(
        settings, settings.topic_dead_letters, args.limit, "dead letters", _dead_letter_lines
    )


def _print_topic(
    settings: Settings,
    topic: str,
    limit: int | None,
    what: str,
    render: Callable[[bytes], list[str]],
) -> int:
    """Print a topic's records, each rendered as lines whose producers' control characters
    are escaped (line breaks too: only the layout's own separate lines); say so when there
    are none."""
    from promo.kafka_io import read_messages
    from promo.terminal import safe_for_terminal

    shown = 0
    for _, _, _, value in read_messages(settings, topic, limit=limit):
        print("\n".join(safe_for_terminal(line) for line in render(value)))
        shown += 1
    if not shown:
        print(f"no {what} on {topic} at {settings.broker_url}", file=sys.stderr)
    return 0


def _dead_letter_lines(value: bytes) -> list[str]:
    letter = orjson.loads(value)
    raw = letter["raw_text"] if letter["raw_text"] is not None else f"(base64) {letter['raw_b64']}"
    where = f"{letter['source_topic']}[{letter['partition']}]@{letter['offset']}"
    size = f" ({letter['raw_size']:,} bytes, truncated)" if letter.get("truncated") else ""
    return [f"{letter['reason']:<18} {where}: {letter['detail']}{size}", f"{'':<19}{raw[:160]}"]


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.bench import STAGES, run

    command = shlex.join(["promo", *sys.argv[1:]])
    with progress.stages(total=STAGES, desc="bench") as stage:  # stderr: stdout is the JSON
        figures = run(settings, args.events, args.quick, command, stage)
    print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
    return 0


def _settings(settings: Settings, args: argparse.Namespace) -> int:
    source = env_file_from(args.env_file)
    if source is not None:  # a comment: the output stays a file --env-file can read
        print(f"# from the environment, then {source[0]} ({source[1]}): the environment wins")
    for name, value in settings.model_dump(mode="json").items():
        print(f"PROMO_{name.upper()}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Throughput of the pure per-event path: validation + features + decisions, per batch.

Prints events per second of ``streams.batch.process_batch`` on synthetic traffic with a
stand-in table (a dict of serialised states), so the figure is the engine's own cost without
Faust or Kafka. The engine is configured from the settings, as a worker's is.
Usage: ``python -m benchmarks [--events N] [--users N]``.
"""

from __future__ import annotations

import argparse
import random
import time

import orjson

from agents.app import engine_config, initial_snapshot
from promo.settings import load_settings
from streams.batch import RawMessage, process_batch
from streams.engine import DecisionEngine
from streams.user_state import UserState


def synthetic_messages(n: int, users: int, seed: int = 1) -> list[RawMessage]:
    rng = random.Random(seed)
    t0 = 1_700_000_000_000
    out = []
    for i in range(n):
        user = f"u{rng.randrange(users)}"
        ts = t0 + i * 200
        kind = rng.choices(["view", "search", "add_to_cart", "purchase"], [70, 15, 12, 3])[0]
        event: dict[str, object] = {"event_id": f"b{i}", "user_id": user, "ts": ts, "type": kind}
        if kind in ("view", "add_to_cart"):
            event.update(
                item_id=f"i{rng.randrange(500)}", category=f"c{rng.randrange(8)}", price=25.0
            )
            if kind == "add_to_cart":
                event["quantity"] = 1
        elif kind == "search":
            event["query"] = "shoes"
        else:
            event.update(order_id=f"o{i}", order_total=50.0)
        out.append(RawMessage(orjson.dumps(event), user.encode(), ts, "clickstream", 0, i))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    config = engine_config(load_settings())
    engine = DecisionEngine(config, initial_snapshot(load_settings(), config))
    table: dict[str, bytes] = {}
    messages = synthetic_messages(args.events, args.users)

    def load(user_id: str) -> UserState | None:
        raw = table.get(user_id)
        return UserState.from_bytes(raw, config.abandon_after_ms) if raw is not None else None

    decisions = 0
    start = time.perf_counter()
    for i in range(0, len(messages), args.batch):
        result = process_batch(
            engine, messages[i : i + args.batch], load, max_bytes=65_536, max_future_skew_ms=300_000
        )
        for user_id, state in result.states.items():
            table[user_id] = state.to_bytes()
        decisions += len(result.output.decisions)
    seconds = time.perf_counter() - start
    sizes = sorted(len(v) for v in table.values())
    print(f"pure engine: {args.events} events, {args.users} users, batches of {args.batch}")
    print(
        f"  {args.events / seconds:,.0f} events/s ({seconds * 1e6 / args.events:.0f} us/event),"
        f" {decisions} decisions"
    )
    print(f"  state size: median {sizes[len(sizes) // 2]} B, max {sizes[-1]} B")


if __name__ == "__main__":
    main()

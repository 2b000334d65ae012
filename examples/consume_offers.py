"""A plain kafka-python consumer of the ``offers`` topic, as a notification service would run it.

Standalone (kafka-python and the standard library only). Delivery is at least once: after a
worker crash an offer can come again, with the same ``offer_id`` and content. So the service
shows each ``offer_id`` at most once, and never after ``expires_at`` (epoch ms; compare it with
the wall clock when you show the offer). That rule is the pure function
:func:`offers_to_show`; the rest is Kafka plumbing.

>>> offer = {"offer_id": "of-1", "user_id": "u-42", "expires_at": 2_000, "title": "10 % off"}
>>> shown, seen = offers_to_show([offer, offer], seen={}, now_ms=1_000)
>>> [o["offer_id"] for o in shown], seen
(['of-1'], {'of-1': 2000})
>>> offers_to_show([offer], seen=seen, now_ms=1_500)[0]  # a redelivery
[]
>>> offers_to_show([offer], seen={}, now_ms=2_000)[0]  # expired
[]

The ``seen`` map only needs an offer until it expires (after that the expiry check drops it
anyway), so it stays bounded. In production keep it where the service keeps its state (a
database keyed by offer_id), not in memory: a restarted consumer re-reads offers it may
already have shown.

Run ``python examples/consume_offers.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable
from typing import Any

DEFAULT_TOPIC = "offers"


def offers_to_show(
    offers: Iterable[dict[str, Any]], seen: dict[str, int], now_ms: int
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The offers to show now, in order, and the updated ``seen`` map (offer_id -> expires_at).

    Drops an offer whose ``offer_id`` was seen before (a redelivery) and one whose
    ``expires_at`` is not after ``now_ms``. Forgets seen offers that have expired. ``seen`` is
    not modified.
    """
    kept = {offer_id: expiry for offer_id, expiry in seen.items() if expiry > now_ms}
    show = []
    for offer in offers:
        offer_id, expires_at = offer["offer_id"], int(offer["expires_at"])
        if offer_id in kept or expires_at <= now_ms:
            continue
        kept[offer_id] = expires_at
        show.append(offer)
    return show, kept


def decode_offer(value: bytes | None) -> dict[str, Any] | None:
    """An offer from a message value; None for one that is not an offer object."""
    try:
        data = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(data, dict) or not {"offer_id", "user_id", "expires_at"} <= data.keys():
        return None
    # A newer schema_version only adds fields (docs/contracts.md, "Compatibility"): read the
    # fields this consumer knows and ignore the rest.
    return data


def _bootstrap_default() -> str:
    url = os.environ.get("PROMO_BROKER_URL", "kafka://localhost:9092")
    return url.removeprefix("kafka://").replace(";", ",")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--bootstrap",
        default=_bootstrap_default(),
        help="Kafka bootstrap servers, host:port[,host:port] (default: from PROMO_BROKER_URL, "
        "else localhost:9092)",
    )
    parser.add_argument(
        "--topic",
        default=os.environ.get("PROMO_TOPIC_OFFERS", DEFAULT_TOPIC),
        help="offers topic (default: PROMO_TOPIC_OFFERS, else offers)",
    )
    parser.add_argument("--group", default="notification-service", help="consumer group")
    parser.add_argument("--max-seconds", type=float, default=0, help="stop after this (0: never)")
    args = parser.parse_args(argv)

    from kafka import KafkaConsumer  # imported here so that --help needs no Kafka client

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=[host.strip() for host in args.bootstrap.split(",") if host.strip()],
        group_id=args.group,
        enable_auto_commit=False,  # commit after the offers are handled: at least once
        auto_offset_reset="earliest",
    )
    seen: dict[str, int] = {}
    deadline = time.monotonic() + args.max_seconds if args.max_seconds else None
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=1000)
            offers = [
                offer
                for records in batch.values()
                for record in records
                if (offer := decode_offer(record.value)) is not None
            ]
            show, seen = offers_to_show(offers, seen, now_ms=time.time_ns() // 1_000_000)
            for offer in show:
                # Here the service notifies the user, then reports an `offer_shown` event
                # (examples/produce_events.py, offer_shown_event) once it was displayed.
                print(f"show {offer['offer_id']} to {offer['user_id']}: {offer.get('title')}")
            if batch:
                consumer.commit()
    finally:
        consumer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

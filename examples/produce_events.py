"""A plain kafka-python producer of clickstream events, built to docs/contracts.md.

Standalone on purpose (kafka-python and the standard library only): the platform team can copy
it. One builder per event type returns the event as a dict, ready to serialise; ``send_event``
is the only function that talks to Kafka. The rules it follows, each from the contract:

- message key = the event's ``user_id``, UTF-8 (anything else is rejected as ``key_mismatch``);
- ``ts`` = when the event happened, integer epoch milliseconds UTC (never seconds);
- a fresh ``event_id`` per event, the *same* one when the send is retried (idempotency key);
- optional fields are left out, never sent as ``null``;
- the Kafka message timestamp is left to the client (the time of sending): the engine measures
  ``ts`` against it, so setting it to ``ts`` would hide a wrong clock.

>>> event = add_to_cart_event("u-42", "sku-7", "shoes", price=59.9, quantity=2, ts=1718035245000)
>>> event["type"], event["quantity"], sorted(event)[:3]
('add_to_cart', 2, ['category', 'event_id', 'item_id'])
>>> message_key(event)
b'u-42'

Run ``python examples/produce_events.py --help``; with a broker,
``python examples/produce_events.py --bootstrap localhost:9092 --user u-42`` sends one short
session (search, view, cart add) for that user.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from typing import Any

DEFAULT_TOPIC = "clickstream"


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds: the ``ts`` of an event happening now."""
    return time.time_ns() // 1_000_000


def _event(event_type: str, user_id: str, ts: int | None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": fields.pop("event_id", None) or f"ev-{uuid.uuid4().hex}",
        "user_id": user_id,
        "ts": now_ms() if ts is None else ts,
        "type": event_type,
    }
    event.update({name: value for name, value in fields.items() if value is not None})
    return event


def search_event(
    user_id: str, query: str, *, category: str | None = None, ts: int | None = None, **extra: Any
) -> dict[str, Any]:
    return _event("search", user_id, ts, query=query, category=category, **extra)


def view_event(
    user_id: str, item_id: str, category: str, *, price: float, ts: int | None = None, **extra: Any
) -> dict[str, Any]:
    """A product page seen; ``price`` is the unit price shown. Optional ``margin=``: the gross
    margin per unit (price minus unit cost, before any coupon, at most ``price``)."""
    return _event("view", user_id, ts, item_id=item_id, category=category, price=price, **extra)


def add_to_cart_event(
    user_id: str,
    item_id: str,
    category: str,
    *,
    price: float,
    quantity: int = 1,
    ts: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``quantity`` units added (the cart line grows by it). Send ``margin=`` (per unit, at
    most ``price``) when the shop knows it: the engine then values the cart at its margin."""
    return _event(
        "add_to_cart",
        user_id,
        ts,
        item_id=item_id,
        category=category,
        price=price,
        quantity=quantity,
        **extra,
    )


def remove_from_cart_event(
    user_id: str, item_id: str, *, quantity: int = 1, ts: int | None = None, **extra: Any
) -> dict[str, Any]:
    """``quantity`` units taken out (the line goes when none is left)."""
    return _event("remove_from_cart", user_id, ts, item_id=item_id, quantity=quantity, **extra)


def purchase_event(
    user_id: str,
    order_id: str,
    *,
    items: list[dict[str, Any]],
    order_total: float,
    coupon_code: str | None = None,
    offer_id: str | None = None,
    ts: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An order placed. ``order_total``: what the customer paid for the items, after the
    coupon, without shipping. ``items``: every line, ``{"item_id", "price" (unit price before
    the coupon), "quantity", "category", optionally "margin" (per unit, before the coupon)}``: the
    order's margin is known when every line has one. ``coupon_code`` only when the coupon actually
    applied (it reduced the price, or waived shipping): a code sent is counted as redeemed."""
    return _event(
        "purchase",
        user_id,
        ts,
        order_id=order_id,
        order_total=round(order_total, 2),
        items=items,
        coupon_code=coupon_code,
        offer_id=offer_id,
        **extra,
    )


def offer_shown_event(
    user_id: str, offer_id: str, *, ts: int | None = None, **extra: Any
) -> dict[str, Any]:
    """The offer was displayed to the user, once, when displayed (not when received)."""
    return _event("offer_shown", user_id, ts, offer_id=offer_id, **extra)


def offer_clicked_event(
    user_id: str, offer_id: str, *, ts: int | None = None, **extra: Any
) -> dict[str, Any]:
    """The user opened the offer (clicked the notification or its link)."""
    return _event("offer_clicked", user_id, ts, offer_id=offer_id, **extra)


def example_session(user_id: str, start_ms: int) -> list[dict[str, Any]]:
    """One of each event type for ``user_id``, a few seconds apart from ``start_ms``."""
    offer_id = "of-c4d830f3c5a647968aa82725"
    sku7 = {"item_id": "sku-7", "price": 59.9, "quantity": 1, "category": "shoes", "margin": 23.96}
    sku3 = {"item_id": "sku-3", "price": 30.1, "quantity": 1, "category": "socks", "margin": 9.03}
    return [
        search_event(user_id, "running shoes", ts=start_ms),
        view_event(user_id, "sku-7", "shoes", price=59.9, margin=23.96, ts=start_ms + 20_000),
        add_to_cart_event(
            user_id, "sku-7", "shoes", price=59.9, margin=23.96, quantity=2, ts=start_ms + 45_000
        ),
        remove_from_cart_event(user_id, "sku-7", quantity=1, ts=start_ms + 60_000),
        add_to_cart_event(user_id, "sku-3", "socks", price=30.1, margin=9.03, ts=start_ms + 65_000),
        offer_shown_event(user_id, offer_id, ts=start_ms + 70_000),
        offer_clicked_event(user_id, offer_id, ts=start_ms + 250_000),
        purchase_event(
            user_id,
            "o-5001",
            items=[sku7, sku3],
            order_total=0.9 * (59.9 + 30.1),
            coupon_code="P10-C4D830F3C5",
            offer_id=offer_id,
            ts=start_ms + 400_000,
        ),
    ]


def message_key(event: dict[str, Any]) -> bytes:
    """The Kafka key: the user id, UTF-8, so all of a user's events share a partition."""
    return str(event["user_id"]).encode("utf-8")


def message_value(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def make_producer(bootstrap: str) -> Any:
    """A kafka-python producer with the client's default partitioner (murmur2 of the key,
    as the Java client's): every producer of the topic must use the same one."""
    from kafka import KafkaProducer  # imported here so that --help needs no Kafka client

    return KafkaProducer(
        bootstrap_servers=[host.strip() for host in bootstrap.split(",") if host.strip()],
        acks="all",  # an event is sent once the broker has it
        retries=5,  # a retry resends the same bytes: same event_id, stored once
        linger_ms=5,
    )


def send_event(producer: Any, topic: str, event: dict[str, Any]) -> Any:
    return producer.send(topic, key=message_key(event), value=message_value(event))


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
        default=os.environ.get("PROMO_TOPIC_CLICKSTREAM", DEFAULT_TOPIC),
        help="clickstream topic (default: PROMO_TOPIC_CLICKSTREAM, else clickstream)",
    )
    parser.add_argument("--user", default="u-42", help="user id of the session sent")
    parser.add_argument(
        "--print", action="store_true", help="print the events as JSON lines, send nothing"
    )
    args = parser.parse_args(argv)
    # Search, view, cart add, as if over the last minute: ts is when each happened, never later
    # than the send (at most 5 minutes ahead of the message timestamp is accepted).
    events = example_session(args.user, now_ms() - 60_000)[:3]
    if args.print:
        for event in events:
            print(message_value(event).decode())
        return 0
    producer = make_producer(args.bootstrap)
    try:
        for event in events:
            send_event(producer, args.topic, event).get(timeout=30)
    finally:
        producer.close(timeout=30)
    print(f"sent {len(events)} events for {args.user} to {args.topic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

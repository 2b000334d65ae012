"""Clickstream events: what the platform sends on the ``clickstream`` topic.

The JSON Schema ``schemas/json/clickstream-event.schema.json`` is the published contract; this
module is its typed mirror. ``streams.validation`` turns raw bytes into a :class:`ClickEvent`
or a rejection, and a test checks that both agree with the JSON Schema.

Times are integer milliseconds since the Unix epoch (UTC), the event's own time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    VIEW = "view"
    SEARCH = "search"
    ADD_TO_CART = "add_to_cart"
    REMOVE_FROM_CART = "remove_from_cart"
    PURCHASE = "purchase"
    OFFER_SHOWN = "offer_shown"
    OFFER_CLICKED = "offer_clicked"


#: Position of each type in per-type counters (feature vectors, window buckets).
EVENT_TYPE_INDEX: dict[EventType, int] = {t: i for i, t in enumerate(EventType)}


@dataclass(frozen=True, slots=True)
class LineItem:
    item_id: str
    price: float
    quantity: int = 1
    category: str | None = None
    #: Gross margin per unit (price minus unit cost, before any coupon); None: not sent.
    margin: float | None = None


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One validated clickstream event.

    Fields beyond the common four are filled according to ``type`` (see the JSON Schema):
    ``view`` has item, category and price; ``add_to_cart`` adds quantity; ``purchase`` has
    order id, order total and optionally its items and the coupon / offer it used. ``margin``
    (optional, on item events and on each line of a purchase) is the gross margin per unit
    in the currency of ``price``: price minus unit cost, before any coupon. ``group``
    (optional, on any event) is a group the platform assigns the user, for fairness
    monitoring; the latest one sent (by event time) is the user's.
    """

    event_id: str
    user_id: str
    ts: int
    type: EventType
    session_id: str | None = None
    item_id: str | None = None
    category: str | None = None
    price: float | None = None
    quantity: int | None = None
    query: str | None = None
    order_id: str | None = None
    order_total: float | None = None
    items: tuple[LineItem, ...] = ()
    coupon_code: str | None = None
    offer_id: str | None = None
    margin: float | None = None
    group: str | None = None

    @property
    def order_margin(self) -> float | None:
        """A purchase's gross margin before any coupon: its lines' margin x quantity, summed,
        when every line carries a margin; None when unknown (no lines, or a line without one).
        Where it is unknown, the economics apply the global rate (``PROMO_GROSS_MARGIN``) to
        the order's value, so a partial sum, which would count the unknown lines as free of
        cost, is never used.

        >>> lines = (LineItem("a", 50.0, 2, margin=20.0), LineItem("b", 10.0, 1, margin=4.0))
        >>> ClickEvent("e", "u", 0, EventType.PURCHASE, order_total=110.0, items=lines).order_margin
        44.0
        >>> ClickEvent("e", "u", 0, EventType.PURCHASE, items=lines[:1] + (LineItem("c", 5.0),)
        ...            ).order_margin is None
        True
        """
        items = self.items
        if not items or any(line.margin is None for line in items):
            return None
        return sum((line.margin or 0.0) * line.quantity for line in items)

    def to_json_dict(self) -> dict[str, Any]:
        """The event as it travels on the wire, without empty optional fields."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "ts": self.ts,
            "type": self.type.value,
        }
        for name in _OPTIONAL_SCALARS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.items:
            out["items"] = [_line_item_dict(item) for item in self.items]
        return out


_OPTIONAL_SCALARS = (
    "session_id",
    "item_id",
    "category",
    "price",
    "margin",
    "quantity",
    "query",
    "order_id",
    "order_total",
    "coupon_code",
    "offer_id",
    "group",
)


def _line_item_dict(item: LineItem) -> dict[str, Any]:
    out: dict[str, Any] = {"item_id": item.item_id, "price": item.price, "quantity": item.quantity}
    if item.category is not None:
        out["category"] = item.category
    if item.margin is not None:
        out["margin"] = item.margin
    return out

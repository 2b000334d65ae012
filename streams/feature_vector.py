"""The fixed, ordered numeric view of a user that models, decisions and analysts share.

Decisions log this vector, training examples carry it, and the models read it by position;
``FEATURE_NAMES`` documents the order. Changing it is a model-layout change: snapshots record
the layout and refuse to load across it.
"""

from __future__ import annotations

from streams.features import SlidingWindowFeatures

FEATURE_NAMES: tuple[str, ...] = (
    "views_1h",
    "cart_adds_1h",
    "views_24h",
    "searches_24h",
    "cart_adds_24h",
    "views_7d",
    "purchases_7d",
    "spend_7d",
    "views_30d",
    "purchases_30d",
    "spend_30d",
    "basket_value_7d",
    "abandoned_carts_30d",
    "offers_shown_30d",
    "offers_clicked_30d",
    "hours_since_view",
    "hours_since_cart",
    "hours_since_purchase",
    "cart_value",
    "cart_items",
    "top_category_share",
)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}

#: Order value assumed for a user with no purchase and an empty cart.
DEFAULT_ORDER_VALUE = 60.0


def feature_vector(f: SlidingWindowFeatures, now: int) -> tuple[float, ...]:
    """The user's features at event time ``now``, in ``FEATURE_NAMES`` order."""
    return (
        float(f.count("view", "1h")),
        float(f.count("add_to_cart", "1h")),
        float(f.count("view", "24h")),
        float(f.count("search", "24h")),
        float(f.count("add_to_cart", "24h")),
        float(f.count("view", "7d")),
        float(f.count("purchase", "7d")),
        round(f.spend("7d"), 2),
        float(f.count("view", "30d")),
        float(f.count("purchase", "30d")),
        round(f.spend("30d"), 2),
        round(f.cart_value_added("7d"), 2),
        float(f.abandoned_carts("30d")),
        float(f.count("offer_shown", "30d")),
        float(f.count("offer_clicked", "30d")),
        round(f.hours_since(f.last_view, now), 3),
        round(f.hours_since(f.last_cart, now), 3),
        round(f.hours_since(f.last_purchase, now), 3),
        round(f.cart_value, 2),
        float(f.cart_items),
        round(f.top_category_share(now), 4),
    )


def expected_order_value(vector: tuple[float, ...]) -> float:
    """What an order by this user is likely worth: the cart if any, else their average order.

    >>> v = [0.0] * len(FEATURE_NAMES)
    >>> expected_order_value(tuple(v))
    60.0
    >>> v[FEATURE_INDEX["purchases_30d"]], v[FEATURE_INDEX["spend_30d"]] = 2, 150.0
    >>> expected_order_value(tuple(v))
    75.0
    """
    cart = vector[FEATURE_INDEX["cart_value"]]
    if cart > 0:
        return cart
    purchases = vector[FEATURE_INDEX["purchases_30d"]]
    if purchases > 0:
        return vector[FEATURE_INDEX["spend_30d"]] / purchases
    return DEFAULT_ORDER_VALUE

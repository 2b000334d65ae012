"""Per-user sliding-window features on event time.

Windows of 1 h, 24 h, 7 d and 30 d hold, per event type, counts plus spend, cart value added
and cart abandonments. They are kept as sparse bucket series so the state stays small whatever
the user's activity: 10-minute buckets for the last hour, hourly buckets for the last day,
daily buckets for the last 30 days. A window of length W sums the W / width most recent
buckets, the current one included, so it reaches back between W - width and W: the 7 d window
on a Monday noon counts from the Tuesday before, 00:00.

Out-of-order rule: an event is added to the bucket of its own timestamp, as long as that
bucket is still retained relative to the latest timestamp seen for the user (the user's
watermark); older events count in the longer windows only, or not at all past 30 days.
Recency takes the latest timestamp, never the latest arrival. The cart is applied in arrival
order. Late events still update the windows; the engine only refuses to *decide* on them.

Cart abandonment: a non-empty cart with no cart or purchase activity for ``abandon_after_ms``
counts as abandoned when the user next browses (event time has no timers); that event marks
the user as returning to an abandoned cart, a decision point. A cart keeps at most 100 lines
and is dropped after 30 idle days, so the state stays bounded.

>>> f = SlidingWindowFeatures()
>>> f.update("view", ts=0, category="shoes")
>>> f.update("add_to_cart", ts=60_000, category="shoes", amount=40.0, item_id="i1", quantity=1)
>>> f.count("view", "1h"), f.cart_value
(1, 40.0)
>>> f.update("view", ts=3 * HOUR, category="bags")   # back after 3 h with the cart untouched
>>> f.count("view", "1h"), f.count("view", "24h"), f.abandoned_carts("24h"), f.returning_to_cart
(1, 2, 1, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

#: Counter layout of one bucket: one count per event type, then the amounts.
TYPES = (
    "view",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "offer_shown",
    "offer_clicked",
)
_SPEND = len(TYPES)
_CART_VALUE = _SPEND + 1
_ABANDONED = _SPEND + 2
#: Purchases paid with a coupon code the engine never sent this user (``streams.abuse``).
#: Last, so a state written before it existed reads as zeros (its trimmed counters are
#: padded) and an older worker keeps the extra counter it does not read: no format change.
_UNSENT_CODES = _SPEND + 3
_BUCKET_WIDTH = _SPEND + 4
_TYPE_SLOT = {name: i for i, name in enumerate(TYPES)}

#: (series name, bucket width, buckets retained). Retention covers the longest window served.
_SERIES = (("10m", 10 * MINUTE, 6), ("1h", HOUR, 24), ("1d", DAY, 30))
#: Window name -> (series index, window length).
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (0, HOUR),
    "24h": (1, DAY),
    "7d": (2, 7 * DAY),
    "30d": (2, 30 * DAY),
}

#: Events that show the user is back in the shop (for cart abandonment).
BROWSING = frozenset({"view", "search", "add_to_cart", "remove_from_cart"})
MAX_CART_LINES = 100
CART_MAX_AGE = 30 * DAY

AFFINITY_HALF_LIFE = 7 * DAY
AFFINITY_KEEP = 8
NEVER = -1


@dataclass(slots=True)
class SlidingWindowFeatures:
    """Everything we know about one user's behaviour, updated one event at a time."""

    abandon_after_ms: int = 30 * MINUTE
    watermark: int = NEVER
    last_view: int = NEVER
    last_cart: int = NEVER
    last_purchase: int = NEVER
    last_cart_activity: int = NEVER
    #: One dict per series: bucket start // width -> counters.
    buckets: list[dict[int, list[float]]] = field(default_factory=lambda: [{}, {}, {}])
    #: item id -> [unit price, quantity, category], plus the unit margin as a fourth element
    #: when the shop sent one. Optional and last, so a state written before margins existed
    #: reads as carts without them, and a worker of that time reads a newer state (it only
    #: looks at the first three): no state format change, in either direction.
    cart: dict[str, list[Any]] = field(default_factory=dict)
    #: category -> [decayed weight, time of the weight]
    affinity: dict[str, list[float]] = field(default_factory=dict)
    returning_to_cart: bool = False

    def update(
        self,
        event_type: str,
        *,
        ts: int,
        category: str | None = None,
        amount: float = 0.0,
        item_id: str | None = None,
        quantity: int = 1,
        margin: float | None = None,
    ) -> None:
        """Fold one event in. ``amount``: unit price for cart events, order total for purchases;
        ``margin``: the unit margin of a cart add, when the shop sent one."""
        self.returning_to_cart = False
        idle = ts - self.last_cart_activity
        if self.cart and event_type in BROWSING and idle > self.abandon_after_ms:
            # The user browses again after leaving the cart alone: it was abandoned back then.
            # (A purchase is no return to an abandoned cart, nor is a notification shown.)
            self._add(self.last_cart_activity + self.abandon_after_ms, _ABANDONED, 1.0)
            self.last_cart_activity = ts  # count one abandonment per idle gap
            if idle > CART_MAX_AGE:
                self.cart.clear()  # a month-old cart is no cart to come back to
            else:
                self.returning_to_cart = True
        self.watermark = max(self.watermark, ts)
        self._add(ts, _TYPE_SLOT[event_type], 1.0)
        if event_type == "view":
            self.last_view = max(self.last_view, ts)
        elif event_type == "add_to_cart":
            self.last_cart = max(self.last_cart, ts)
            self.last_cart_activity = max(self.last_cart_activity, ts)
            self._add(ts, _CART_VALUE, amount * quantity)
            if item_id is not None:
                new = [amount, 0, category] if margin is None else [amount, 0, category, margin]
                line = self.cart.setdefault(item_id, new)  # keeps its first price and margin
                line[1] += quantity
                if len(self.cart) > MAX_CART_LINES:
                    del self.cart[next(iter(self.cart))]  # the oldest line: state stays bounded
        elif event_type == "remove_from_cart":
            self.last_cart_activity = max(self.last_cart_activity, ts)
            removed = self.cart.get(item_id or "")
            if removed is not None:
                removed[1] -= quantity
                if removed[1] <= 0:
                    del self.cart[item_id or ""]
        elif event_type == "purchase":
            self.last_purchase = max(self.last_purchase, ts)
            self.last_cart_activity = max(self.last_cart_activity, ts)
            self._add(ts, _SPEND, amount)
            self.cart.clear()
        if category is not None and event_type in ("view", "add_to_cart", "purchase"):
            self._touch_category(category, ts)
        self._prune()

    # --- reading ---------------------------------------------------------------------------------

    def count(self, event_type: str, window: str) -> int:
        return int(self._sum(_TYPE_SLOT[event_type], window))

    def spend(self, window: str) -> float:
        return self._sum(_SPEND, window)

    def cart_value_added(self, window: str) -> float:
        return self._sum(_CART_VALUE, window)

    def abandoned_carts(self, window: str) -> int:
        return int(self._sum(_ABANDONED, window))

    def record_unsent_code(self, ts: int) -> None:
        """Count a purchase at ``ts`` (already folded in) that was paid with a coupon code
        the engine never sent this user: a public code, or one passed on by someone else."""
        self._add(ts, _UNSENT_CODES, 1.0)

    def unsent_codes(self, window: str) -> int:
        return int(self._sum(_UNSENT_CODES, window))

    @property
    def cart_value(self) -> float:
        return float(sum(line[0] * line[1] for line in self.cart.values()))

    def cart_margin_rate(self, default_rate: float) -> float:
        """The gross margin rate of what the cart holds: its lines' margin x quantity over
        their value, a line without a margin counting at ``default_rate``. Exactly
        ``default_rate`` when no line has a margin (or the cart is worth nothing), so a shop
        that sends no margins is valued as before.

        >>> f = SlidingWindowFeatures()
        >>> f.update("add_to_cart", ts=0, amount=100.0, item_id="a", quantity=1, margin=50.0)
        >>> f.update("add_to_cart", ts=1, amount=50.0, item_id="b", quantity=2)
        >>> f.cart_margin_rate(0.3)  # (50 + 0.3 x 100) / 200
        0.4
        """
        value = margin = 0.0
        known = False
        for line in self.cart.values():
            line_value = line[0] * line[1]
            value += line_value
            if len(line) > 3:
                margin += line[3] * line[1]
                known = True
            else:
                margin += default_rate * line_value
        return float(margin / value) if known and value > 0 else default_rate

    @property
    def cart_items(self) -> int:
        return int(sum(line[1] for line in self.cart.values()))

    def hours_since(self, ts: int, now: int, cap_hours: float = 720.0) -> float:
        """Hours from ``ts`` to ``now``, capped (``cap_hours`` also stands for "never")."""
        if ts == NEVER:
            return cap_hours
        return min(max(now - ts, 0) / HOUR, cap_hours)

    def top_categories(self, now: int, n: int = 3) -> list[tuple[str, float]]:
        """Categories by decayed interest at ``now``, strongest first."""
        weights = [(c, decay(w, t, now)) for c, (w, t) in self.affinity.items()]
        return sorted(weights, key=lambda cw: -cw[1])[:n]

    def interest(self, now: int) -> dict[str, float]:
        """Each category's decayed interest at ``now`` (views, cart adds, purchases)."""
        return {c: decay(w, t, now) for c, (w, t) in self.affinity.items()}

    def cart_category_shares(self) -> dict[str, float]:
        """Each category's share of the cart's value (empty for an empty or worthless cart).

        >>> f = SlidingWindowFeatures()
        >>> f.update("add_to_cart", ts=0, category="shoes", amount=60.0, item_id="a", quantity=1)
        >>> f.update("add_to_cart", ts=1, category="socks", amount=10.0, item_id="b", quantity=2)
        >>> f.cart_category_shares()
        {'shoes': 0.75, 'socks': 0.25}
        """
        values: dict[str, float] = {}
        for line in self.cart.values():
            if line[2] is not None:
                values[line[2]] = values.get(line[2], 0.0) + line[0] * line[1]
        total = sum(values.values())
        return {c: v / total for c, v in values.items()} if total > 0 else {}

    def top_category_share(self, now: int) -> float:
        """How concentrated the user's interest is: 1.0 = a single category."""
        weights = [decay(w, t, now) for w, t in self.affinity.values()]
        total = sum(weights)
        return max(weights) / total if total > 0 else 0.0

    # --- internals -------------------------------------------------------------------------------

    def _add(self, ts: int, slot: int, value: float) -> None:
        for series, (_, width, keep) in zip(self.buckets, _SERIES, strict=True):
            index = ts // width
            if index <= self.watermark // width - keep:
                continue  # older than this series keeps: counts only in longer windows
            counters = series.get(index)
            if counters is None:
                counters = series[index] = [0.0] * _BUCKET_WIDTH
            counters[slot] += value

    def _sum(self, slot: int, window: str) -> float:
        series_index, length = WINDOWS[window]
        width = _SERIES[series_index][1]
        first = (self.watermark - length) // width + 1
        return sum(c[slot] for i, c in self.buckets[series_index].items() if i >= first)

    def _prune(self) -> None:
        for series, (_, width, keep) in zip(self.buckets, _SERIES, strict=True):
            oldest = self.watermark // width - keep
            if len(series) > keep or (series and min(series) <= oldest):
                for index in [i for i in series if i <= oldest]:
                    del series[index]

    def add_interest(self, category: str, ts: int) -> None:
        """Interest in ``category`` from something other than its items, a view's worth (a
        search the platform sent with its category)."""
        self._touch_category(category, ts)

    def _touch_category(self, category: str, ts: int) -> None:
        entry = self.affinity.get(category)
        if entry is None:
            self.affinity[category] = [1.0, float(ts)]
        else:
            entry[0] = decay(entry[0], entry[1], ts) + 1.0 if ts >= entry[1] else entry[0] + 1.0
            entry[1] = max(entry[1], float(ts))
        if len(self.affinity) > AFFINITY_KEEP:
            weakest = min(
                self.affinity, key=lambda c: decay(self.affinity[c][0], self.affinity[c][1], ts)
            )
            del self.affinity[weakest]

    # --- compact form ----------------------------------------------------------------------------

    def to_compact(self) -> list[Any]:
        """A JSON-ready list; zero counters are trimmed so idle buckets cost a few bytes."""
        return [
            self.watermark,
            self.last_view,
            self.last_cart,
            self.last_purchase,
            self.last_cart_activity,
            [[[i, *_trim(c)] for i, c in series.items()] for series in self.buckets],
            self.cart,
            self.affinity,
        ]

    @classmethod
    def from_compact(cls, data: list[Any], abandon_after_ms: int) -> SlidingWindowFeatures:
        features = cls(abandon_after_ms=abandon_after_ms)
        (
            features.watermark,
            features.last_view,
            features.last_cart,
            features.last_purchase,
            features.last_cart_activity,
            series,
            features.cart,
            features.affinity,
        ) = data
        features.buckets = [{int(row[0]): _untrim(row[1:]) for row in rows} for rows in series]
        return features


def decay(weight: float, at: float, now: float) -> float:
    """``weight`` given at ``at``, as it counts at ``now`` (halved every
    ``AFFINITY_HALF_LIFE``)."""
    return float(weight * 0.5 ** (max(now - at, 0.0) / AFFINITY_HALF_LIFE))


def _trim(counters: list[float]) -> list[float]:
    end = len(counters)
    while end and counters[end - 1] == 0.0:
        end -= 1
    return counters[:end]


def _untrim(values: list[float]) -> list[float]:
    return [float(v) for v in values] + [0.0] * (_BUCKET_WIDTH - len(values))

"""The offer catalogue: what the policy may send, and what each offer costs the shop.

A catalogue is a JSON list of entries (``PROMO_OFFER_CATALOGUE`` names the file)::

    [{"code": "pct10", "kind": "percent_off", "value": 10, "title": "10 % off your order"}]

>>> catalogue = parse_catalogue([
...     {"code": "pct10", "kind": "percent_off", "value": 10, "title": "10 % off"},
...     {"code": "ship", "kind": "free_shipping", "value": 4.9, "title": "Free shipping"},
... ])
>>> [o.code for o in catalogue]
['pct10', 'ship']
>>> catalogue[0].cost(order_value=80.0), catalogue[1].cost(order_value=80.0)
(8.0, 4.9)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.decisions import NO_OFFER
from streams.errors import ConfigError

OFFER_KINDS = ("percent_off", "free_shipping", "fixed_off", "bundle")


@dataclass(frozen=True, slots=True)
class OfferSpec:
    """One catalogue entry.

    ``value`` is a percent for ``percent_off`` and ``bundle`` (bundle: off the whole order when
    it has two items or more), a currency amount for ``fixed_off`` and ``free_shipping`` (the
    shipping the shop pays instead of the customer).
    """

    code: str
    kind: str
    value: float
    title: str
    coupon_prefix: str

    def cost(self, order_value: float) -> float:
        """What the shop gives away when an order of ``order_value`` redeems this offer."""
        if self.kind in ("percent_off", "bundle"):
            return order_value * self.value / 100.0
        return min(self.value, order_value) if self.kind == "fixed_off" else self.value


DEFAULT_CATALOGUE: tuple[OfferSpec, ...] = (
    OfferSpec("pct10", "percent_off", 10.0, "10 % off your order", "P10"),
    OfferSpec("pct20", "percent_off", 20.0, "20 % off your order", "P20"),
    OfferSpec("free_shipping", "free_shipping", 4.9, "Free shipping on your order", "FS"),
    OfferSpec("bundle15", "bundle", 15.0, "15 % off when you buy two or more", "B15"),
)


def parse_catalogue(entries: Any) -> tuple[OfferSpec, ...]:
    """Check a decoded JSON catalogue; a bad entry raises ``ConfigError`` naming it."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError("offer catalogue: expected a non-empty JSON list of offers")
    specs: list[OfferSpec] = []
    for i, entry in enumerate(entries):
        where = f"offer catalogue entry {i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object")
        code = entry.get("code")
        if not isinstance(code, str) or not code or code == NO_OFFER or len(code) > 64:
            raise ConfigError(f"{where}: 'code' must be a short string other than {NO_OFFER!r}")
        kind = entry.get("kind")
        if kind not in OFFER_KINDS:
            raise ConfigError(f"{where} ({code}): 'kind' must be one of {', '.join(OFFER_KINDS)}")
        value = entry.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where} ({code}): 'value' must be a positive number")
        if kind in ("percent_off", "bundle") and value >= 100:
            raise ConfigError(f"{where} ({code}): a percentage must be below 100")
        title = entry.get("title")
        if not isinstance(title, str) or not title:
            raise ConfigError(f"{where} ({code}): 'title' must be a non-empty string")
        prefix = entry.get("coupon_prefix", code[:4].upper())
        specs.append(OfferSpec(code, kind, float(value), title, str(prefix)))
    codes = [s.code for s in specs]
    if len(set(codes)) != len(codes):
        raise ConfigError("offer catalogue: offer codes must be unique")
    return tuple(specs)

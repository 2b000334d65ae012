"""The offer catalogue: what the policy may send, and what each offer costs the shop.

A catalogue is a JSON list of entries (``PROMO_OFFER_CATALOGUE`` names the file)::

    [{"code": "pct10", "kind": "percent_off", "value": 10, "title": "10 % off your order"},
     {"code": "cat20", "kind": "percent_off", "value": 20, "category": "interest",
      "title": "20 % off {category}"}]

An entry with a ``category`` is a *category offer*: its discount applies only to the order's
lines of that category. ``"interest"`` lets the engine choose the category per decision, the
one of the user's cart they are most drawn to (``OfferSpec.scope``); any other value names a
category (as the clickstream spells it), so no category can be called "interest" or
"complement". ``{category}`` in the title becomes the target's name.

A ``bundle`` with ``"category": "complement"`` is a *complement bundle*: its discount applies
to the whole order once the order holds a line of the category the bundle rules pair with
the cart (``streams.bundles``), chosen per decision; it is not offered where no rule pairs
the cart with a category it lacks::

    {"code": "pair15", "kind": "bundle", "value": 15, "category": "complement",
     "title": "15 % off your order when you add {category}"}

>>> catalogue = parse_catalogue([
...     {"code": "pct10", "kind": "percent_off", "value": 10, "title": "10 % off"},
...     {"code": "ship", "kind": "free_shipping", "value": 4.9, "title": "Free shipping"},
... ])
>>> [o.code for o in catalogue]
['pct10', 'ship']
>>> catalogue[0].cost(order_value=80.0), catalogue[1].cost(order_value=80.0)
(8.0, 4.9)
>>> shoes = parse_catalogue([{"code": "c20", "kind": "percent_off", "value": 20,
...                          "category": "interest", "title": "20 % off {category}"}])[0]
>>> shoes.title_for("shoes"), shoes.cost(order_value=80.0, scope=0.25)
('20 % off shoes', 4.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.decisions import NO_OFFER
from streams.bundles import BundleRules
from streams.errors import ConfigError

OFFER_KINDS = ("percent_off", "free_shipping", "fixed_off", "bundle")
#: Kinds that can be limited to a category: a discount on lines (free shipping and the
#: bundle rule are about the whole order).
CATEGORY_KINDS = ("percent_off", "fixed_off")
#: The category value that lets the engine choose the target per decision.
INTEREST = "interest"
#: A bundle's category value: the complement of the cart, by the bundle rules.
COMPLEMENT = "complement"


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
    #: None: the whole order; ``INTEREST``: the category chosen per decision; ``COMPLEMENT``
    #: (a bundle): the category the rules pair with the cart; else a category.
    category: str | None = None

    def cost(self, order_value: float, scope: float = 1.0) -> float:
        """What the shop gives away when an order of ``order_value`` redeems this offer;
        ``scope``: the share of the order's value its discount applies to (a category
        offer's category; 1 for the whole order)."""
        if self.kind in ("percent_off", "bundle"):
            return order_value * scope * self.value / 100.0
        return min(self.value, order_value * scope) if self.kind == "fixed_off" else self.value

    def scope(
        self,
        cart_shares: Mapping[str, float],
        interest: Mapping[str, float],
        rules: BundleRules | None = None,
    ) -> tuple[str | None, float]:
        """(the category this offer would be on, the share of the order it applies to) for a
        user whose cart splits by category as ``cart_shares`` and whose interest is
        ``interest``. A category offer applies to nothing (share 0) when the cart holds none
        of its category: it is not offered then. ``INTEREST`` picks, among the cart's
        categories, the one the user is most drawn to: a discount on what they came for.
        ``COMPLEMENT`` takes the category ``rules`` pair with the cart, and the whole order
        (share 0 without one).

        >>> spec = OfferSpec("c20", "percent_off", 20.0, "20 % off {category}", "C20", INTEREST)
        >>> spec.scope({"shoes": 0.75, "socks": 0.25}, {"socks": 3.0, "shoes": 1.0})
        ('socks', 0.25)
        >>> spec.scope({}, {"socks": 3.0})
        (None, 0.0)
        """
        if self.category is None:
            return None, 1.0
        if self.category == COMPLEMENT:
            target = rules.complement(cart_shares, interest) if rules is not None else None
            return target, 1.0 if target is not None else 0.0
        if self.category != INTEREST:
            return self.category, cart_shares.get(self.category, 0.0)
        if not cart_shares:
            return None, 0.0
        target = max(cart_shares, key=lambda c: (interest.get(c, 0.0), cart_shares[c], c))
        return target, cart_shares[target]

    def title_for(self, category: str | None) -> str:
        """The title shown to the user, naming the category a category offer is on."""
        return self.title.replace("{category}", category) if category else self.title


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
        category = entry.get("category")
        if category is not None and (not isinstance(category, str) or not 0 < len(category) <= 128):
            raise ConfigError(f"{where} ({code}): 'category' must be a short string")
        if category == COMPLEMENT and kind != "bundle":
            raise ConfigError(f"{where} ({code}): only a bundle can be on {COMPLEMENT!r}")
        if category not in (None, COMPLEMENT) and kind not in CATEGORY_KINDS:
            raise ConfigError(
                f"{where} ({code}): only {' and '.join(CATEGORY_KINDS)} can have a 'category' "
                f"(a bundle only {COMPLEMENT!r})"
            )
        specs.append(OfferSpec(code, kind, float(value), title, str(prefix), category))
    codes = [s.code for s in specs]
    if len(set(codes)) != len(codes):
        raise ConfigError("offer catalogue: offer codes must be unique")
    return tuple(specs)

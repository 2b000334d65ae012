"""Bundles from association rules: which category to propose beside what is in the cart.

``promo rules`` counts, over the purchases in ClickHouse, how often two categories are bought
in one order (``promo.bundle_rules``), and publishes the rules as a versioned snapshot on the
rules topic; every worker follows it. A rule ``a -> b`` reads "orders with a line of ``a``
also hold one of ``b``":

- ``support``: the share of all orders that hold both;
- ``confidence``: the share of orders with ``a`` that hold ``b`` too, P(b | a);
- ``lift``: confidence over the share of orders that hold ``b``, P(b | a) / P(b): above 1,
  buying ``a`` makes ``b`` likelier; 1 is chance.

A catalogue offer with ``"category": "complement"`` (a bundle) proposes, at each decision, the
complement of the cart (``complement``): among the rules whose ``a`` is in the cart and whose
``b`` is not, the ``b`` that the cart makes likeliest relative to chance, highest lift first.
Lift, not confidence: the bundle's discount goes to every order that holds ``b``, and a
category bought with everything (high confidence, lift near 1) would mostly be bought anyway.
A rule of lift 1 or less proposes nothing. Without rules, or without such a rule, the offer is
not offered.

>>> rules = BundleRules(3, 0, 0, 400, (
...     BundleRule("pasta", "sauce", 60, 0.15, 0.6, 3.0),
...     BundleRule("pasta", "wine", 20, 0.05, 0.2, 1.6),
...     BundleRule("pasta", "bread", 50, 0.125, 0.5, 0.9),
... ))
>>> rules.complement(["pasta"], {})
'sauce'
>>> rules.complement(["pasta", "sauce"], {})  # the cart holds it: the next one
'wine'
>>> rules.complement(["pasta", "sauce", "wine"], {}) is None  # bread: lift below 1
True
>>> rules.complement(["shoes"], {}) is None
True
>>> BundleRules.from_bytes(rules.to_bytes()) == rules
True
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.errors import RulesError

#: A rule proposes its consequent only when buying the antecedent makes it likelier.
MIN_LIFT = 1.0
#: The snapshot's layout; a worker refuses (and logs) one of another format.
FORMAT = 1


@dataclass(frozen=True, slots=True)
class BundleRule:
    antecedent: str
    consequent: str
    #: Orders that hold both categories.
    orders: int
    support: float
    confidence: float
    lift: float


@dataclass(frozen=True, slots=True)
class BundleRules:
    """One computation's rules. ``version`` increases with every computation (its time in
    ms); ``since`` and ``computed_at`` bound the purchases counted (epoch ms); ``baskets``:
    the orders counted."""

    version: int
    since: int
    computed_at: int
    baskets: int
    rules: tuple[BundleRule, ...]
    #: The rules by antecedent: a decision looks up its cart's categories only.
    _by_antecedent: dict[str, list[BundleRule]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for rule in self.rules:
            self._by_antecedent.setdefault(rule.antecedent, []).append(rule)

    def complement(self, cart: Iterable[str], interest: Mapping[str, float]) -> str | None:
        """The category to propose beside a cart holding ``cart``'s categories: the
        consequent of the rule of highest lift (above 1) from a category in the cart to one
        not in it; then confidence, and ``interest`` (the user's, by category), break ties.
        None without such a rule."""
        held = set(cart)
        best: tuple[float, float, float, str] | None = None
        for rule in (r for c in held for r in self._by_antecedent.get(c, ())):
            if rule.consequent in held or rule.lift <= MIN_LIFT:
                continue
            key = (rule.lift, rule.confidence, interest.get(rule.consequent, 0.0), rule.consequent)
            if best is None or key > best:
                best = key
        return None if best is None else best[3]

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "since": self.since,
                "computed_at": self.computed_at,
                "baskets": self.baskets,
                "rules": [
                    [r.antecedent, r.consequent, r.orders, r.support, r.confidence, r.lift]
                    for r in self.rules
                ],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> BundleRules:
        """A snapshot from its bytes; ``RulesError`` says why one cannot be read."""
        try:
            payload: dict[str, Any] = orjson.loads(data)
            if payload.get("format") != FORMAT:
                raise RulesError(f"rules of format {payload.get('format')!r}, not {FORMAT}")
            rules = tuple(
                BundleRule(str(a), str(b), int(n), float(s), float(c), float(lift))
                for a, b, n, s, c, lift in payload["rules"]
            )
            return cls(
                int(payload["version"]),
                int(payload["since"]),
                int(payload["computed_at"]),
                int(payload["baskets"]),
                rules,
            )
        except RulesError:
            raise
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RulesError(f"unreadable rules snapshot: {exc!r}") from exc


def count_rules(
    baskets: Iterable[Iterable[str]], min_orders: int, version: int, since: int, until: int
) -> BundleRules:
    """The rules of ``baskets`` (each order's line categories), counted in Python as
    ``promo rules`` counts them in ClickHouse (``promo.bundle_rules``; a test holds the two
    to 1e-9): ``promo evaluate`` decides with these, having no ClickHouse in its loop.

    >>> rules = count_rules([["a", "b"], ["a", "b", "b"], ["a"], ["c"], []], 2, 1, 0, 9)
    >>> rules.baskets, [(r.antecedent, r.consequent, r.orders, r.lift) for r in rules.rules]
    (4, [('a', 'b', 2, 1.3333333333333333), ('b', 'a', 2, 1.3333333333333333)])
    """
    sets = [s for s in (frozenset(c for c in basket if c) for basket in baskets) if s]
    n = len(sets)
    single = Counter(c for s in sets for c in s)
    pairs = Counter(p for s in sets for p in itertools.permutations(sorted(s), 2))
    rules = tuple(
        BundleRule(a, b, k, k / n, k / single[a], k * n / (single[a] * single[b]))
        for (a, b), k in sorted(pairs.items())
        if k >= min_orders
    )
    return BundleRules(version, since, until, n, rules)

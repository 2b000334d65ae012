"""The shop's assortment: categories, items and their prices.

Prices are lognormal around a category median, so a grocery basket costs a few euros and an
electronics one a few hundred: offers then matter differently to different users (free
shipping is a big deal on a small basket and nothing on a large one).

>>> assortment = build_assortment(seed=7)
>>> len(assortment.categories), len(assortment.item_ids)
(8, 320)
>>> assortment.item_ids[0], assortment.categories[assortment.item_category[0]]
('i0000', 'electronics')
>>> 10 < assortment.category_mean_price[assortment.categories.index("books")] < 30
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class CategorySpec:
    """A category's name, median unit price, price spread (lognormal sigma) and search terms."""

    name: str
    median_price: float
    price_sigma: float
    search_terms: tuple[str, ...]


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("electronics", 120.0, 0.8, ("headphones", "usb c cable", "phone case", "4k tv")),
    CategorySpec("home", 45.0, 0.7, ("lamp", "bed sheets", "coffee maker", "frying pan")),
    CategorySpec("fashion", 35.0, 0.6, ("sneakers", "rain jacket", "jeans", "wool scarf")),
    CategorySpec("books", 14.0, 0.4, ("crime novel", "cookbook", "travel guide", "sci-fi")),
    CategorySpec("beauty", 18.0, 0.5, ("shampoo", "sunscreen", "lipstick", "face cream")),
    CategorySpec("sports", 40.0, 0.7, ("yoga mat", "running shoes", "dumbbells", "tent")),
    CategorySpec("toys", 22.0, 0.6, ("lego", "puzzle", "board game", "plush bear")),
    CategorySpec("grocery", 8.0, 0.5, ("coffee beans", "olive oil", "green tea", "chocolate")),
)

ITEMS_PER_CATEGORY = 40


@dataclass(frozen=True, slots=True)
class Assortment:
    """Items as parallel tuples (cheap to index on the per-event path).

    ``category_items[c]`` lists the item indices of category ``c``; ``category_mean_price[c]``
    is the mean unit price of those items, which the ground truth uses as the expected price
    of an item picked uniformly in that category.
    """

    categories: tuple[str, ...]
    search_terms: tuple[tuple[str, ...], ...]
    item_ids: tuple[str, ...]
    item_category: tuple[int, ...]
    item_price: tuple[float, ...]
    category_items: tuple[tuple[int, ...], ...]
    category_mean_price: tuple[float, ...]


def build_assortment(
    seed: int | np.random.SeedSequence,
    categories: tuple[CategorySpec, ...] = CATEGORIES,
    items_per_category: int = ITEMS_PER_CATEGORY,
) -> Assortment:
    """Draw item prices for every category; the same seed gives the same shop."""
    rng = np.random.default_rng(seed)
    item_ids: list[str] = []
    item_category: list[int] = []
    item_price: list[float] = []
    category_items: list[tuple[int, ...]] = []
    for c, spec in enumerate(categories):
        raw = rng.lognormal(np.log(spec.median_price), spec.price_sigma, items_per_category)
        # Shelf prices end in .99 and never drop below 0.99.
        prices = np.maximum(0.99, np.round(raw) - 0.01)
        first = len(item_ids)
        for price in prices:
            item_ids.append(f"i{len(item_ids):04d}")
            item_category.append(c)
            item_price.append(round(float(price), 2))
        category_items.append(tuple(range(first, len(item_ids))))
    means = tuple(sum(item_price[i] for i in items) / len(items) for items in category_items)
    return Assortment(
        categories=tuple(spec.name for spec in categories),
        search_terms=tuple(spec.search_terms for spec in categories),
        item_ids=tuple(item_ids),
        item_category=tuple(item_category),
        item_price=tuple(item_price),
        category_items=tuple(category_items),
        category_mean_price=means,
    )

"""What an order placed after a decision is worth, learned from the orders themselves.

The features only offer a guess (``expected_order_value``: the cart, else the user's average
order), and in the measured shop that guess is far off in both directions: at a return to
the cart it averaged ~4 times the order finally bought (a cart collects items over days;
what is bought is a part of it), at a first cart add about half. An order's value multiplies
every offer's margin gain, so a fixed-cost coupon (free shipping) looked profitable wherever
the cart was large. Here the realised orders say how far to trust the guess:

    log(order) = a[cell] + b * log(guess) + noise

fitted by least squares from each labelled decision that bought (its first order's items
value, before any coupon): ``b`` is pooled over the cells and pulled towards 1, each cell's
``a`` towards the shop-wide one (``ORDER_PSEUDO`` orders), so before any order the guess
stands, and a cell with few orders borrows from the shop. The prediction is the mean of the
log-normal, not its median.

>>> model = OrderValueModel()
>>> model.predict("r1.o0.cart_return", guess=300.0)  # no orders yet: the guess
300.0
>>> for _ in range(200):
...     model.learn("r1.o0.cart_return", guess=300.0, order=100.0)
>>> round(model.predict("r1.o0.cart_return", guess=300.0))
100
"""

from __future__ import annotations

import math
from typing import Any

#: How many orders a cell's own level needs before it outweighs the shop-wide one.
ORDER_PSEUDO = 20.0
#: Pseudo-data pulling the slope towards 1 (the guess scales the order one for one) in
#: units of log(guess) variance x orders: until orders vary with the guess, it stands.
SLOPE_RIDGE = 20.0
#: A prediction stays within this factor of the guess either way: one odd order cannot
#: value a user's baskets at a thousandth or a thousand times what they hold.
MAX_RATIO = 20.0

# Per cell and overall: orders, sum x, sum y, sum x^2, sum x*y, sum y^2 (x = log guess,
# y = log order).
_N, _SX, _SY, _SXX, _SXY, _SYY = range(6)


class OrderValueModel:
    """Realised order value given the features' guess, per behaviour cell."""

    def __init__(self) -> None:
        self.cells: dict[str, list[float]] = {}
        self.total = [0.0] * 6
        #: (orders learned, (slope, residual variance)): a decision asks for it, and it
        #: only changes when an order is learned
        self._fit = (-1.0, (1.0, 0.0))

    def to_state(self) -> dict[str, Any]:
        return {"cells": self.cells, "total": self.total}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> OrderValueModel:
        model = cls()
        if state:  # snapshots from before this model have none: the guess stands
            model.cells = {cell: list(sums) for cell, sums in state["cells"].items()}
            model.total = list(state["total"])
        return model

    def learn(self, cell: str, *, guess: float, order: float) -> None:
        if guess <= 0 or order <= 0:
            return
        x, y = math.log(guess), math.log(order)
        for sums in (self.cells.setdefault(cell, [0.0] * 6), self.total):
            sums[_N] += 1
            sums[_SX] += x
            sums[_SY] += y
            sums[_SXX] += x * x
            sums[_SXY] += x * y
            sums[_SYY] += y * y

    def predict(self, cell: str, *, guess: float) -> float:
        n = self.total[_N]
        if n < 2 or guess <= 0:
            return guess
        slope, residual_var = self._slope()
        x = math.log(guess)
        level = self._level(self.total, slope)
        sums = self.cells.get(cell)
        if sums and sums[_N]:
            # The cell's level, shrunk towards the shop's by ORDER_PSEUDO orders.
            own = self._level(sums, slope)
            level = (sums[_N] * own + ORDER_PSEUDO * level) / (sums[_N] + ORDER_PSEUDO)
        log_ratio = level + (slope - 1.0) * x + residual_var / 2.0
        log_ratio = min(max(log_ratio, -math.log(MAX_RATIO)), math.log(MAX_RATIO))
        return round(guess * math.exp(log_ratio), 2)

    def _slope(self) -> tuple[float, float]:
        """The within-cell slope of log order on log guess (ridge towards 1) and the
        residual variance around the fit."""
        if self._fit[0] == self.total[_N]:
            return self._fit[1]
        sxx = sxy = syy = 0.0
        orders = 0.0
        for s in self.cells.values():
            n = s[_N]
            orders += n
            sxx += s[_SXX] - s[_SX] ** 2 / n
            sxy += s[_SXY] - s[_SX] * s[_SY] / n
            syy += s[_SYY] - s[_SY] ** 2 / n
        slope = (sxy + SLOPE_RIDGE) / (sxx + SLOPE_RIDGE)
        residual = max(syy - 2 * slope * sxy + slope * slope * sxx, 0.0)
        fit = slope, residual / max(orders - len(self.cells) - 1, 1.0)
        self._fit = (self.total[_N], fit)
        return fit

    @staticmethod
    def _level(sums: list[float], slope: float) -> float:
        """Mean log order minus slope x mean log guess: the intercept ``a``."""
        return (sums[_SY] - slope * sums[_SX]) / sums[_N]

"""Plain-text tables and figures for the terminal: one layout for every report section."""

from __future__ import annotations

import math
from collections.abc import Sequence

from streams.evaluation import Estimate


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Fixed-width table: first column left-aligned, the others right-aligned.

    >>> print(table("T", ["a", "n"], [["x", "1"], ["yy", "22"]]))
    T
      a    n
      --  --
      x    1
      yy  22
    """
    widths = [max(len(str(cells[i])) for cells in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(cell).rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True)]
        return "  " + "  ".join([first, *rest]).rstrip()

    rule = "  " + "  ".join("-" * w for w in widths)
    return "\n".join([title, line(header), rule, *(line(r) for r in rows)])


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2%}"


def pct_ci(e: Estimate) -> str:
    """A share with its interval in points: ``27.56% [25.58, 29.62]``."""
    if math.isnan(e.low):
        return pct(e.value)
    return f"{e.value:.2%} [{e.low * 100:.2f}, {e.high * 100:.2f}]"


def money(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.2f}"


def money_ci(e: Estimate) -> str:
    """An amount with its interval: ``48.94 [41.51, 56.36]``."""
    if math.isnan(e.low):
        return money(e.value)
    return f"{e.value:,.2f} [{e.low:,.2f}, {e.high:,.2f}]"

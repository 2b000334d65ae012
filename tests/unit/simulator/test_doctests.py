"""The simulator's docstring examples run (pyproject's testpaths do not include simulator/)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "simulator.assortment",
    "simulator.population",
    "simulator.behaviour",
    "simulator.shop",
    "simulator.truth",
    "simulator.malformed",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

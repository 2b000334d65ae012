"""The bundle rules feed: every worker decides with the newest rules it has read, and passes
over a record it cannot read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from agents import rules as feed
from agents.follow import follow_topic
from streams.bundles import BundleRule, BundleRules
from tests.agents.conftest import agent_settings
from tests.unit.conftest import make_engine


def _rules(version: int) -> BundleRules:
    return BundleRules(version, 0, 1, 100, (BundleRule("a", "b", 20, 0.2, 0.5, 2.0),))


class Feed:
    """A consumer of the rules topic that hands out ``values`` from offset 0."""

    def __init__(self, values: list[bytes]) -> None:
        self.values = values

    async def start(self) -> None: ...

    def assign(self, partitions: list[Any]) -> None: ...

    async def seek_to_beginning(self, *partitions: Any) -> None: ...

    async def __aiter__(self) -> AsyncIterator[Any]:
        for offset, value in enumerate(self.values):
            yield SimpleNamespace(value=value, offset=offset)

    async def stop(self) -> None: ...


async def test_a_worker_decides_with_the_newest_readable_rules() -> None:
    engine = make_engine()
    records = [_rules(5).to_bytes(), b"damaged", _rules(9).to_bytes(), _rules(7).to_bytes()]
    settings = agent_settings()
    await follow_topic(
        settings,
        settings.topic_rules,
        feed.readable,
        lambda rules: feed.adopt_newer(engine, rules),
        lambda s: Feed(records),
    )
    assert engine.rules == _rules(9)

"""The bundle rules feed: every worker tails the rules topic (``promo rules`` publishes there)
and decides complement bundles with the newest rules it has read (``streams.bundles``)."""

from __future__ import annotations

import logging

from agents.app import Promo
from agents.follow import follow_topic
from streams.bundles import BundleRules
from streams.engine import DecisionEngine
from streams.errors import RulesError

log = logging.getLogger(__name__)


def register(promo: Promo) -> None:
    engine = promo.engine

    @promo.app.task  # type: ignore[untyped-decorator]
    async def follow_rules() -> None:
        await follow_topic(
            promo.settings,
            promo.settings.topic_rules,
            readable,
            lambda rules: adopt_newer(engine, rules),
        )


def adopt_newer(engine: DecisionEngine, rules: BundleRules) -> None:
    """Decide with ``rules`` from now on if they are newer than the engine's: a record read
    again from the topic's start, or an older computation, changes nothing."""
    if engine.rules is None or rules.version > engine.rules.version:
        engine.rules = rules
        log.info(
            "deciding complement bundles with rules v%d (%d rules)", rules.version, len(rules.rules)
        )


def readable(value: bytes | None, offset: int) -> BundleRules | None:
    """The rules of one record; None (logged) when it cannot be read."""
    try:
        return BundleRules.from_bytes(value or b"")
    except RulesError as exc:
        log.warning("ignoring bundle rules at offset %d: %s", offset, exc)
        return None

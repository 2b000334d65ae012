"""Every topic promo-stream reads or writes. Values are raw bytes: we decode them ourselves,
so that a message Faust could not decode is never silently committed and lost."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from promo.settings import Settings


@dataclass(frozen=True)
class Topics:
    clickstream: TopicT
    offers: TopicT
    dead_letters: TopicT
    decisions: TopicT
    outcomes: TopicT
    training: TopicT
    models: TopicT
    suppressions: TopicT
    rules: TopicT

    @classmethod
    def declare(cls, app: faust.App, settings: Settings) -> Topics:
        def raw(name: str, partitions: int | None = None) -> TopicT:
            return app.topic(
                name,
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=partitions or settings.topic_partitions,
            )

        return cls(
            clickstream=raw(settings.topic_clickstream),
            offers=raw(settings.topic_offers),
            dead_letters=raw(settings.topic_dead_letters),
            decisions=raw(settings.topic_decisions),
            outcomes=raw(settings.topic_outcomes),
            # One partition each: one learner sees every label in order, and every worker
            # reads the whole (tiny) model history.
            training=raw(settings.topic_training, 1),
            models=raw(settings.topic_models, 1),
            suppressions=raw(settings.topic_suppressions),
            # Bundle rules (``promo rules``): one partition, read whole by every worker.
            rules=raw(settings.topic_rules, 1),
        )

    def partitions(self) -> dict[str, int]:
        """Topic name -> partition count, for creating them before the workers start."""
        topics = (
            self.clickstream,
            self.offers,
            self.dead_letters,
            self.decisions,
            self.outcomes,
            self.training,
            self.models,
            self.suppressions,
            self.rules,
        )
        return {t.get_topic_name(): t.partitions or 1 for t in topics}


def owned_partitions(app: faust.App, topic: str) -> set[int]:
    """Partitions of ``topic`` this worker actively owns (not its standbys)."""
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}

"""The learner's rules, without Kafka: learn each label once, and never publish a step back.

The training topic has one partition, so an offset names a label. Each snapshot records the
offset of the last example it has read (``ModelSnapshot.trained_to``). A learner that takes
over (after a crash or a rebalance) continues from the most trained published snapshot and
skips what it has read: the examples since the last committed offset come again, but are
learned once.

>>> from schemas.codec import encode
>>> from schemas.training import TrainingExample
>>> from streams.feature_vector import FEATURE_NAMES
>>> example = TrainingExample("d1", 0, (1.0,) * len(FEATURE_NAMES), "pct10", 1, 0)
>>> snapshot = ModelSnapshot.initial(actions=("none", "pct10"), n_segments=2, seed=1)
>>> learn_batch(snapshot, [(7, encode(example)), (8, b"not json")]).learned
1
>>> snapshot.trained_to, snapshot.examples_seen
(8, 1)
>>> learn_batch(snapshot, [(7, encode(example)), (8, encode(example))]).already_learned
2
>>> models = LearnerModels()
>>> ahead = ModelSnapshot.initial(actions=("none", "pct10"), n_segments=2, seed=1)
>>> ahead.version = 9  # published by a learner that started from untrained models
>>> models.saw(ahead); models.saw(snapshot)
>>> models.base().examples_seen, models.next_version()
(1, 10)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.training import decode_example
from streams.models import ModelSnapshot


@dataclass
class LearnedBatch:
    """What one batch of training examples did to a snapshot."""

    learned: int = 0
    #: At or below the snapshot's ``trained_to``: learned before, by this or another learner.
    already_learned: int = 0
    #: (offset, why) of examples that could not be read; passed over, not retried.
    unreadable: list[tuple[int, str]] = field(default_factory=list)


def learn_batch(snapshot: ModelSnapshot, examples: Sequence[tuple[int, bytes]]) -> LearnedBatch:
    """Learn the (offset, value) examples the snapshot has not read yet, in offset order, and
    record the last offset as read. An unreadable one (or one written for another feature
    layout) is reported and passed over: raising would lose the whole batch of labels."""
    result = LearnedBatch()
    for offset, value in examples:
        if offset <= snapshot.trained_to:
            result.already_learned += 1
            continue
        try:
            snapshot.learn_example(decode_example(value))
            result.learned += 1
        except (ValueError, TypeError, KeyError) as exc:
            result.unreadable.append((offset, repr(exc)))
        snapshot.trained_to = offset
    return result


@dataclass
class LearnerModels:
    """What the learner knows of the published models, and its own copy.

    It continues from the *most trained* snapshot it knows (most examples read, then learned)
    and numbers what it publishes above the *highest version* it knows. Workers adopt any
    higher version, so the next snapshot supersedes every published one, and it has never
    learned less than any of them: no snapshot is a step back, even on a topic that holds a
    less trained snapshot under a higher version (published by a learner that started from
    older models).
    """

    #: The learner's copy, changed in place as it learns; a copy of the most trained otherwise.
    own: ModelSnapshot | None = None
    most_trained: ModelSnapshot | None = None
    top_version: int = 0

    def saw(self, snapshot: ModelSnapshot | None) -> None:
        """A snapshot published (by this learner or another), or the learner's own."""
        if snapshot is None:
            return
        self.top_version = max(self.top_version, snapshot.version)
        if self.most_trained is None or _progress(snapshot) > _progress(self.most_trained):
            self.most_trained = snapshot

    def base(self) -> ModelSnapshot:
        """The snapshot to learn the next batch on: the learner's own while it is the most
        trained, else a copy of the most trained (at least one snapshot must have been seen)."""
        if self.most_trained is None:
            raise ValueError("no snapshot seen: not even the initial models")
        if self.most_trained is not self.own:
            self.own = ModelSnapshot.from_bytes(self.most_trained.to_bytes())
            self.most_trained = self.own
        return self.own

    def next_version(self) -> int:
        return self.top_version + 1


def _progress(snapshot: ModelSnapshot) -> tuple[int, int]:
    return snapshot.trained_to, snapshot.examples_seen

"""The learner's rules: each label learned once across take-overs, and no step back."""

from __future__ import annotations

import random

import orjson

from schemas.codec import encode
from schemas.training import TrainingExample
from streams.feature_vector import FEATURE_NAMES
from streams.learning import LearnerModels, learn_batch
from streams.models import ModelSnapshot, _checksum

ACTIONS = ("none", "pct10", "free_shipping")


def initial() -> ModelSnapshot:
    return ModelSnapshot.initial(ACTIONS, n_segments=3, seed=1)


def labels(n: int, seed: int = 5) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    return [
        (
            offset,
            encode(
                TrainingExample(
                    f"d-{offset}",
                    offset,
                    tuple(rng.uniform(0, 5) for _ in FEATURE_NAMES),
                    rng.choice(ACTIONS),
                    rng.randint(0, 1),
                    0,
                )
            ),
        )
        for offset in range(n)
    ]


def trained(snapshot: ModelSnapshot, version: int, batch: list[tuple[int, bytes]]) -> ModelSnapshot:
    learn_batch(snapshot, batch)
    snapshot.version = version
    return snapshot


def test_a_snapshot_keeps_the_training_offset_it_read_through_its_bytes() -> None:
    snapshot = trained(initial(), 3, labels(4))
    assert ModelSnapshot.from_bytes(snapshot.to_bytes()).trained_to == 3


def test_a_snapshot_published_before_training_offsets_loads_as_having_read_none() -> None:
    envelope = orjson.loads(trained(initial(), 3, labels(4)).to_bytes())
    del envelope["payload"]["trained_to"]
    envelope["sha256"] = _checksum(envelope["payload"])
    old = ModelSnapshot.from_bytes(orjson.dumps(envelope))
    assert (old.version, old.examples_seen, old.trained_to) == (3, 4, -1)


def test_labels_read_again_after_a_take_over_are_learned_once() -> None:
    batch = labels(30)
    once = trained(initial(), 1, batch)
    # The first learner read 0..19 and published; its successor starts from that snapshot
    # and reads from offset 12 again (the last committed offset).
    successor = ModelSnapshot.from_bytes(trained(initial(), 1, batch[:20]).to_bytes())
    again = learn_batch(successor, batch[12:])
    assert (again.learned, again.already_learned) == (10, 8)
    assert successor.to_bytes() == once.to_bytes()


def test_an_unreadable_example_is_passed_over_and_the_rest_of_its_batch_learned() -> None:
    batch = labels(3)
    batch[1] = (1, b'{"decision_id": "d-1"}')
    snapshot = initial()
    done = learn_batch(snapshot, batch)
    assert (done.learned, [offset for offset, _ in done.unreadable]) == (2, [1])
    assert (snapshot.examples_seen, snapshot.trained_to) == (2, 2)


def test_a_learner_continues_from_the_most_trained_snapshot_above_the_highest_version() -> None:
    # A learner that started from untrained models published v9 with fewer labels than v8.
    batch = labels(50)
    best, behind = trained(initial(), 8, batch[:40]), trained(initial(), 9, batch[:5])
    models = LearnerModels()
    for snapshot in (best, behind, initial()):
        models.saw(snapshot)
    base = models.base()
    assert (base.examples_seen, base.trained_to, models.next_version()) == (40, 39, 10)
    assert base is not best  # a copy: the snapshot the workers decide with is never changed


def test_a_learner_keeps_learning_on_its_own_copy_while_it_is_the_most_trained() -> None:
    models = LearnerModels()
    models.saw(initial())
    own = models.base()
    learn_batch(own, labels(5))
    own.version = models.next_version()
    models.saw(own)
    models.saw(ModelSnapshot.from_bytes(own.to_bytes()))  # the follower reads it back
    assert models.base() is own
    assert models.next_version() == 2

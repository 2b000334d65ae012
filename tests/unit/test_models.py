from __future__ import annotations

import random

import pytest

from streams.errors import ModelError
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
from streams.models import ModelSnapshot

ACTIONS = ("none", "pct10")


def user(cart: float) -> tuple[float, ...]:
    v = [0.0] * len(FEATURE_NAMES)
    v[FEATURE_INDEX["cart_value"]] = cart
    v[FEATURE_INDEX["views_24h"]] = 3.0
    return tuple(v)


def test_learns_that_the_offer_helps_only_some_users() -> None:
    # Ground truth: the coupon lifts buying from 10 % to 60 % for full carts, nothing otherwise.
    rng = random.Random(3)
    snapshot = ModelSnapshot.initial(ACTIONS, n_segments=2, seed=1, learning_rate=0.05)
    for _ in range(6000):
        cart = rng.choice([0.0, 120.0])
        action = rng.choice(ACTIONS)
        p = 0.6 if (cart and action == "pct10") else 0.1
        snapshot.learn(user(cart), action, int(rng.random() < p))
    r = snapshot.response

    def uplift(cart: float) -> float:
        return r.purchase_probability(user(cart), "pct10") - r.purchase_probability(
            user(cart), "none"
        )

    # Online SGD after a few thousand labels: the sign and the contrast, not the exact 0.5.
    assert uplift(120.0) > 0.2
    assert abs(uplift(0.0)) < 0.1


def test_snapshot_round_trip_and_layout_guard() -> None:
    snapshot = ModelSnapshot.initial(ACTIONS, n_segments=3, seed=1)
    snapshot.learn(user(10.0), "pct10", 1)
    copy = ModelSnapshot.from_bytes(snapshot.to_bytes(), expected_layout=snapshot.layout)
    x = user(10.0)
    assert copy.response.purchase_probability(x, "pct10") == snapshot.response.purchase_probability(
        x, "pct10"
    )
    assert copy.segmenter.segment(x) == snapshot.segmenter.segment(x)
    with pytest.raises(ModelError, match="layout"):
        ModelSnapshot.from_bytes(snapshot.to_bytes(), expected_layout=(*snapshot.layout, "pct20"))
    with pytest.raises(ModelError):
        ModelSnapshot.from_bytes(b"not a pickle")


def test_same_seed_same_segments() -> None:
    a = ModelSnapshot.initial(ACTIONS, n_segments=4, seed=9)
    b = ModelSnapshot.initial(ACTIONS, n_segments=4, seed=9)
    rng = random.Random(1)
    for _ in range(200):
        x = user(rng.uniform(0, 200))
        a.learn(x, "none", 0)
        b.learn(x, "none", 0)
    assert [a.segmenter.segment(user(c)) for c in (0, 50, 200)] == [
        b.segmenter.segment(user(c)) for c in (0, 50, 200)
    ]

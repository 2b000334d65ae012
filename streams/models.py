"""The shared online models: purchase response and user segments.

What is shared and what is per user: a logistic regression per user would see a handful of
labels in its life, so the *models* are shared by all users and all workers, and what is per
user is the *state* they read (the sliding-window features). One learner (the single partition
of the training topic) updates the models from labelled decisions and publishes versioned
snapshots; every worker decides with the latest snapshot it has read, and each decision logs
that version. Workers therefore never disagree for long, and never learn divergent models.

- :class:`~streams.uplift.UpliftModel`: P(purchase within the decision's window | user,
  action): a River logistic regression for the baseline (no offer) and each offer's effect
  per behaviour cell *with its uncertainty*, so the policy knows how sure it is.
- :class:`Segmenter`: River KMeans over a few scaled behaviour features; the segment is
  reported with every decision and can drive per-segment policy.

>>> snapshot = ModelSnapshot.initial(actions=("none", "pct10"), n_segments=3, seed=1)
>>> x = tuple([1.0] * len(FEATURE_NAMES))
>>> before = snapshot.response.belief(x, "add_to_cart").effect_mean["pct10"]
>>> snapshot.learn(x, "add_to_cart", "pct10", 1, redeemed=True)
>>> snapshot.response.belief(x, "add_to_cart").effect_mean["pct10"] > before
True
>>> ModelSnapshot.from_bytes(snapshot.to_bytes()).version
0
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

from river import cluster, preprocessing

from schemas.training import TrainingExample
from streams.errors import ModelError
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
from streams.uplift import UpliftModel

_SEGMENT_FEATURES = (
    "views_30d",
    "purchases_30d",
    "spend_30d",
    "hours_since_purchase",
    "cart_value",
    "abandoned_carts_30d",
    "offers_clicked_30d",
)
_SEGMENT_INDEX = tuple(FEATURE_INDEX[name] for name in _SEGMENT_FEATURES)


class Segmenter:
    """Online k-means over scaled behaviour; segment ids are 0..n_segments-1."""

    def __init__(self, n_segments: int, seed: int) -> None:
        self.n_segments = n_segments
        self._scaler = preprocessing.StandardScaler()
        # A small halflife moves centres slowly, so segment ids stay stable between snapshots.
        self._kmeans = cluster.KMeans(n_clusters=n_segments, halflife=0.05, sigma=1.0, seed=seed)

    def segment(self, vector: tuple[float, ...]) -> int:
        return int(self._kmeans.predict_one(self._scaler.transform_one(_segment_inputs(vector))))

    def learn(self, vector: tuple[float, ...]) -> None:
        raw = _segment_inputs(vector)
        self._scaler.learn_one(raw)
        self._kmeans.learn_one(self._scaler.transform_one(raw))


def _segment_inputs(vector: tuple[float, ...]) -> dict[str, float]:
    return {
        name: math.log1p(max(vector[i], 0.0))
        for name, i in zip(_SEGMENT_FEATURES, _SEGMENT_INDEX, strict=True)
    }


#: Part of every snapshot's layout: a snapshot of another kind of model (an older worker's,
#: still on the compacted models topic) is ignored rather than loaded into this code.
MODEL_KIND = "model=uplift-cells-v2"


@dataclass
class ModelSnapshot:
    """One consistent version of both models, as the learner publishes it."""

    version: int
    layout: tuple[str, ...]
    response: UpliftModel
    segmenter: Segmenter
    examples_seen: int = 0

    @classmethod
    def initial(
        cls,
        actions: tuple[str, ...],
        n_segments: int,
        seed: int,
    ) -> ModelSnapshot:
        """Version 0: the priors (every offer's effect unknown, so nothing is sent)."""
        layout = (*FEATURE_NAMES, *actions, MODEL_KIND)
        return cls(0, layout, UpliftModel(actions), Segmenter(n_segments, seed))

    @property
    def actions(self) -> tuple[str, ...]:
        return self.response.actions

    def learn(
        self, vector: tuple[float, ...], trigger: str, action: str, label: int, *, redeemed: bool
    ) -> None:
        if action not in self.actions:
            return  # an offer since removed from the catalogue: its label teaches nothing now
        self.response.learn(vector, trigger, action, label, redeemed=redeemed)
        self.segmenter.learn(vector)
        self.examples_seen += 1

    def learn_example(self, example: TrainingExample) -> None:
        """Learn one closed decision as the learner reads it from the training topic."""
        self.learn(
            example.features,
            example.trigger,
            example.offer_code,
            example.label,
            redeemed=example.redeemed,
        )

    def to_bytes(self) -> bytes:
        # Pickle is fine here: snapshots only travel on our own internal topic.
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(
        cls, data: bytes, expected_layout: tuple[str, ...] | None = None
    ) -> ModelSnapshot:
        try:
            snapshot = pickle.loads(data)
        except Exception as exc:  # any unpickling failure means the same: unusable snapshot
            raise ModelError(f"cannot read model snapshot ({len(data)} bytes): {exc!r}") from exc
        if not isinstance(snapshot, cls):
            raise ModelError(
                f"model snapshot holds a {type(snapshot).__name__}, not a ModelSnapshot"
            )
        if expected_layout is not None and snapshot.layout != expected_layout:
            raise ModelError(
                f"model snapshot v{snapshot.version} has another feature/action layout; "
                "it was trained for a different catalogue or feature set"
            )
        return snapshot

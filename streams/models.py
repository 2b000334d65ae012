"""The shared online models: purchase response and user segments.

What is shared and what is per user: a logistic regression per user would see a handful of
labels in its life, so the *models* are shared by all users and all workers, and what is per
user is the *state* they read (the sliding-window features). One learner (the single partition
of the training topic) updates the models from labelled decisions and publishes versioned
snapshots; every worker decides with the latest snapshot it has read, and each decision logs
that version. Workers therefore never disagree for long, and never learn divergent models.

- :class:`ResponseModel`: River logistic regression on scaled log-features, the action
  (one-hot) and action x feature interactions: P(purchase within the attribution window | user,
  action). The interactions let the effect of an offer depend on the user (uplift), which is
  what the policy needs; a model of purchase alone would target people who buy anyway.
- :class:`Segmenter`: River KMeans over a few scaled behaviour features; the segment is
  reported with every decision and can drive per-segment policy.

>>> snapshot = ModelSnapshot.initial(actions=("none", "pct10"), n_segments=3, seed=1)
>>> x = tuple([1.0] * len(FEATURE_NAMES))
>>> round(snapshot.response.purchase_probability(x, "pct10"), 2)  # knows nothing yet
0.5
>>> snapshot.learn(x, "pct10", 1)
>>> snapshot.response.purchase_probability(x, "pct10") > 0.5
True
>>> ModelSnapshot.from_bytes(snapshot.to_bytes()).version
0
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

from river import cluster, linear_model, optim, preprocessing

from streams.errors import ModelError
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES

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


def _log_features(vector: tuple[float, ...]) -> dict[str, float]:
    # Counts and amounts are heavy-tailed: log1p keeps a big spender from dominating the fit.
    return {name: math.log1p(max(v, 0.0)) for name, v in zip(FEATURE_NAMES, vector, strict=True)}


class ResponseModel:
    """P(purchase within the attribution window | features, action)."""

    def __init__(self, actions: tuple[str, ...], learning_rate: float) -> None:
        self.actions = actions
        # Only the behaviour features are standardised: an action indicator is constant when
        # present, and a scaler would map it to 0, hiding every offer's own effect.
        self._scaler = preprocessing.StandardScaler()
        self._model = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), intercept_lr=learning_rate, l2=1e-4
        )

    def _inputs(self, scaled: dict[str, float], action: str) -> dict[str, float]:
        if action == self.actions[0]:
            return scaled
        x = dict(scaled)
        x[f"action={action}"] = 1.0
        for name, value in scaled.items():
            x[f"{action}*{name}"] = value
        return x

    def _scaled(self, vector: tuple[float, ...]) -> dict[str, float]:
        return dict(self._scaler.transform_one(_log_features(vector)))

    def purchase_probability(self, vector: tuple[float, ...], action: str) -> float:
        return self._probability(self._scaled(vector), action)

    def purchase_probabilities(self, vector: tuple[float, ...]) -> dict[str, float]:
        scaled = self._scaled(vector)
        return {a: self._probability(scaled, a) for a in self.actions}

    def _probability(self, scaled: dict[str, float], action: str) -> float:
        return float(self._model.predict_proba_one(self._inputs(scaled, action)).get(True, 0.0))

    def learn(self, vector: tuple[float, ...], action: str, label: int) -> None:
        raw = _log_features(vector)
        self._scaler.learn_one(raw)
        scaled = dict(self._scaler.transform_one(raw))
        self._model.learn_one(self._inputs(scaled, action), bool(label))


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


@dataclass
class ModelSnapshot:
    """One consistent version of both models, as the learner publishes it."""

    version: int
    layout: tuple[str, ...]
    response: ResponseModel
    segmenter: Segmenter
    examples_seen: int = 0

    @classmethod
    def initial(
        cls,
        actions: tuple[str, ...],
        n_segments: int,
        seed: int,
        learning_rate: float = 0.02,
    ) -> ModelSnapshot:
        """Version 0: untrained models (every action scores 0.5 until labels arrive)."""
        return cls(
            0,
            FEATURE_NAMES + actions,
            ResponseModel(actions, learning_rate),
            Segmenter(n_segments, seed),
        )

    @property
    def actions(self) -> tuple[str, ...]:
        return self.response.actions

    def learn(self, vector: tuple[float, ...], action: str, label: int) -> None:
        if action not in self.actions:
            return  # an offer since removed from the catalogue: its label teaches nothing now
        self.response.learn(vector, action, label)
        self.segmenter.learn(vector)
        self.examples_seen += 1

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

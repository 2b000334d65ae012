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
- :class:`Segmenter`: River KMeans over a few scaled behaviour features; the segment and its
  name (``streams.segments``, given when a snapshot is built) are logged with every decision.
- :class:`~streams.search_interest.QueryCategories`: which categories a search query is
  about, learned from what users looked at after searching.

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

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import orjson
from river import cluster, preprocessing

from schemas.training import SearchExample, TrainingExample
from streams.errors import ModelError
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
from streams.river_state import dump_kmeans, dump_scaler, load_kmeans, load_scaler
from streams.search_interest import QueryCategories
from streams.segments import SEGMENT_WORDS, SegmentName, name_segments
from streams.uplift import UpliftModel

#: The k-means inputs: the features that ``streams.segments`` has words for.
_SEGMENT_FEATURES = tuple(SEGMENT_WORDS)
_SEGMENT_INDEX = tuple(FEATURE_INDEX[name] for name in _SEGMENT_FEATURES)


class Segmenter:
    """Online k-means over scaled behaviour; segment ids are 0..n_segments-1, each with a name
    analysts can read (``streams.segments``), given when the learner builds a snapshot."""

    def __init__(self, n_segments: int, seed: int) -> None:
        self.n_segments = n_segments
        self.seed = seed
        self._scaler = preprocessing.StandardScaler()
        # A small halflife moves centres slowly, so segment ids stay stable between snapshots.
        self._kmeans = cluster.KMeans(n_clusters=n_segments, halflife=0.05, sigma=1.0, seed=seed)
        # River draws a centre's random start for a feature when the centre first meets it,
        # in the order of a set of names, which follows the process's hash seed: the same
        # seed gave other segments in another process. Draw them here, in the inputs' order.
        for centre in self._kmeans.centers.values():
            for name in _SEGMENT_FEATURES:
                centre[name]  # the defaultdict draws on first read
        #: Training examples assigned to each segment: a segment with none is still at its
        #: random start, and its centre says nothing about anyone.
        self.sizes = dict.fromkeys(range(n_segments), 0)
        self.names: dict[int, SegmentName] = {}
        self.name_segments()

    def segment(self, vector: tuple[float, ...]) -> int:
        return int(self._kmeans.predict_one(self._scaler.transform_one(_segment_inputs(vector))))

    def name_of(self, segment: int) -> str:
        name = self.names.get(segment)
        return name.name if name is not None else ""

    def learn(self, vector: tuple[float, ...]) -> None:
        raw = _segment_inputs(vector)
        self._scaler.learn_one(raw)
        segment = self._kmeans.learn_predict_one(self._scaler.transform_one(raw))
        self.sizes[segment] = self.sizes.get(segment, 0) + 1

    def name_segments(self) -> None:
        """Name each segment from its centre, keeping a name while its centre stays near
        where it was given (``streams.segments.name_segments``); once per snapshot."""
        empty = frozenset(i for i in range(self.n_segments) if not self.sizes.get(i))
        centres = {i: dict(self._kmeans.centers[i]) for i in range(self.n_segments)}
        self.names = name_segments(centres, self.names, empty)

    def to_state(self) -> dict[str, Any]:
        return {
            "n_segments": self.n_segments,
            "seed": self.seed,
            "scaler": dump_scaler(self._scaler),
            "kmeans": dump_kmeans(self._kmeans),
            "sizes": {str(i): n for i, n in self.sizes.items()},
            "names": {str(i): name.to_state() for i, name in self.names.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Segmenter:
        segmenter = cls(state["n_segments"], state["seed"])
        load_scaler(segmenter._scaler, state["scaler"])
        load_kmeans(segmenter._kmeans, state["kmeans"])
        if "sizes" in state:
            segmenter.sizes = {int(i): int(n) for i, n in state["sizes"].items()}
            segmenter.names = {
                int(i): SegmentName.from_state(name) for i, name in state["names"].items()
            }
        else:
            # A snapshot from before names: sizes unknown, so once anything was learned every
            # segment counts as assigned, and is named from where its centre stands now.
            learned = int(bool(segmenter._scaler.counts))
            segmenter.sizes = dict.fromkeys(range(segmenter.n_segments), learned)
            segmenter.name_segments()
        return segmenter


def _segment_inputs(vector: tuple[float, ...]) -> dict[str, float]:
    return {
        name: math.log1p(max(vector[i], 0.0))
        for name, i in zip(_SEGMENT_FEATURES, _SEGMENT_INDEX, strict=True)
    }


#: Part of every snapshot's layout: a snapshot of another kind of model (an older worker's,
#: still on the compacted models topic) is ignored rather than loaded into this code.
MODEL_KIND = "model=uplift-cells-v3"
#: Layout of a snapshot's bytes: JSON data with a checksum, never pickle (whoever can write
#: to the models topic must not be able to run code on every worker).
SNAPSHOT_FORMAT = 1


@dataclass
class ModelSnapshot:
    """One consistent version of both models, as the learner publishes it."""

    version: int
    layout: tuple[str, ...]
    response: UpliftModel
    segmenter: Segmenter
    examples_seen: int = 0
    #: Offset of the last training example these models have read (the training topic has one
    #: partition, so an offset names a label); -1 before any. A learner that takes over skips
    #: the examples at or below it: each label is learned once, whoever learned it.
    trained_to: int = -1
    queries: QueryCategories = field(default_factory=QueryCategories)

    @classmethod
    def initial(
        cls,
        actions: tuple[str, ...],
        n_segments: int,
        seed: int,
    ) -> ModelSnapshot:
        """Version 0: the priors (every offer's effect unknown, so nothing is sent)."""
        return cls(0, cls.layout_for(actions), UpliftModel(actions), Segmenter(n_segments, seed))

    @staticmethod
    def layout_for(actions: tuple[str, ...]) -> tuple[str, ...]:
        """The layout of this code's snapshots for ``actions``: what a worker accepts."""
        return (*FEATURE_NAMES, *actions, MODEL_KIND)

    @property
    def actions(self) -> tuple[str, ...]:
        return self.response.actions

    def number_and_name(self, version: int) -> None:
        """Make this snapshot ``version``: number it, and name its segments as their centres
        stand now. Names are given here, once per snapshot, never per event."""
        self.version = version
        self.segmenter.name_segments()

    def learn(
        self,
        vector: tuple[float, ...],
        trigger: str,
        action: str,
        label: int,
        *,
        redeemed: bool,
        order_value: float = 0.0,
    ) -> None:
        if action not in self.actions:
            return  # an offer since removed from the catalogue: its label teaches nothing now
        self.response.learn(
            vector, trigger, action, label, redeemed=redeemed, order_value=order_value
        )
        self.segmenter.learn(vector)
        self.examples_seen += 1

    def learn_example(self, example: TrainingExample | SearchExample) -> None:
        """Learn one example as the learner reads it from the training topic: a closed
        decision, or a search and the category it led to."""
        if isinstance(example, SearchExample):
            self.queries.learn(example.query, example.category)
            return
        self.learn(
            example.features,
            example.trigger,
            example.offer_code,
            example.label,
            redeemed=example.redeemed,
            order_value=example.order_value,
        )

    def to_bytes(self) -> bytes:
        """JSON: ``{"format", "sha256", "payload"}``, the checksum over the payload's
        canonical JSON (sorted keys) so that a damaged snapshot is refused, not half-used."""
        payload = {
            "version": self.version,
            "layout": list(self.layout),
            "examples_seen": self.examples_seen,
            "trained_to": self.trained_to,
            "response": self.response.to_state(),
            "segmenter": self.segmenter.to_state(),
            "queries": self.queries.to_state(),
        }
        return orjson.dumps(
            {"format": SNAPSHOT_FORMAT, "sha256": _checksum(payload), "payload": payload}
        )

    @classmethod
    def from_bytes(
        cls, data: bytes, expected_layout: tuple[str, ...] | None = None
    ) -> ModelSnapshot:
        try:
            try:
                envelope = orjson.loads(data)
            except orjson.JSONDecodeError:
                envelope = None
            if not isinstance(envelope, dict) or envelope.get("format") != SNAPSHOT_FORMAT:
                raise ModelError(
                    f"model snapshot ({len(data)} bytes) is not JSON of format {SNAPSHOT_FORMAT}"
                    " (a pickled snapshot of an older version is never loaded)"
                )
            payload = envelope["payload"]
            if envelope.get("sha256") != _checksum(payload):
                raise ModelError("model snapshot fails its checksum: damaged or altered")
            snapshot = cls(
                payload["version"],
                tuple(payload["layout"]),
                UpliftModel.from_state(payload["response"]),
                Segmenter.from_state(payload["segmenter"]),
                payload["examples_seen"],
                payload.get("trained_to", -1),  # older snapshots did not record it
                QueryCategories.from_state(payload.get("queries")),  # nor searches
            )
        except ModelError:
            raise
        except Exception as exc:  # orjson, a missing key, a wrong type: all unusable
            raise ModelError(f"cannot read model snapshot ({len(data)} bytes): {exc!r}") from exc
        if expected_layout is not None and snapshot.layout != expected_layout:
            raise ModelError(
                f"model snapshot v{snapshot.version} has another feature/action layout; "
                "it was trained for a different catalogue or feature set"
            )
        return snapshot


def _checksum(payload: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()

"""Named segments: cluster names from their centres, stable across snapshots, and the rule
segments' thresholds; both logged with every decision (streams/segments.py)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from schemas import JSON_SCHEMA_DIR
from schemas.events import ClickEvent, EventType
from streams.engine import EngineOutput
from streams.errors import ModelError
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
from streams.models import ModelSnapshot
from streams.segments import (
    EMPTY,
    RENAME_SD,
    RULE_SEGMENTS,
    TYPICAL,
    SegmentName,
    describe_centre,
    name_segments,
    rule_segment,
)
from streams.validation import MAX_GROUP
from tests.unit.conftest import make_engine

ACTIONS = ("none", "pct10")
T0 = 1_700_000_000_000


# --- names from centres ------------------------------------------------------------------------


def test_a_centre_is_named_by_its_farthest_inputs_in_the_shops_words() -> None:
    centre = {
        "views_30d": 1.6,
        "cart_value": 0.9,
        "purchases_30d": -1.1,
        "spend_30d": -1.0,  # buying has its word already ("rarely buy", farther)
        "offers_clicked_30d": -0.6,  # the fourth theme: left out
        "abandoned_carts_30d": 0.3,  # near the average: not a word
    }
    assert describe_centre(centre) == "frequent browsers, rarely buy, high cart value"


@pytest.mark.parametrize(
    ("name", "high", "low"),
    [
        ("views_30d", "frequent browsers", "rarely browse"),
        ("purchases_30d", "frequent buyers", "rarely buy"),
        ("spend_30d", "high spend", "low spend"),
        ("hours_since_purchase", "no recent purchase", "bought recently"),
        ("cart_value", "high cart value", "low cart value"),
        ("abandoned_carts_30d", "abandon carts", "seldom abandon carts"),
        ("offers_clicked_30d", "click offers", "rarely click offers"),
    ],
)
def test_each_input_has_a_word_each_way(name: str, high: str, low: str) -> None:
    assert describe_centre({name: 0.5}) == high
    assert describe_centre({name: -0.5}) == low
    assert describe_centre({name: 0.49}) == TYPICAL


def test_a_name_stays_while_its_centre_drifts_and_changes_once_it_moved() -> None:
    centre = {"views_30d": 1.0, "purchases_30d": -0.6}
    names = name_segments({0: centre})
    assert names[0].name == "frequent browsers, rarely buy"
    # Drift in steps of 0.2 sd: each step is small, but the name is judged against where it
    # was given, so it changes once the centre has gone more than RENAME_SD from there.
    seen = []
    for step in range(1, 9):
        moved = {"views_30d": 1.0, "purchases_30d": -0.6 + 0.2 * step}
        names = name_segments({0: moved}, names)
        seen.append((round(-0.6 + 0.2 * step, 1), names[0].name))
    assert seen == [
        (-0.4, "frequent browsers, rarely buy"),  # no longer beyond 0.5 sd, but kept
        (-0.2, "frequent browsers, rarely buy"),
        (0.0, "frequent browsers, rarely buy"),
        (0.2, "frequent browsers"),  # 0.8 sd from where it was named: named afresh
        (0.4, "frequent browsers"),
        (0.6, "frequent browsers"),  # beyond 0.5 sd, but 0.4 from the new anchor: kept
        (0.8, "frequent browsers"),
        (1.0, "frequent buyers, frequent browsers"),  # 0.8 from the new anchor
    ]
    assert RENAME_SD == 0.75


def test_a_segment_without_users_says_so_and_is_named_once_it_has_some() -> None:
    names = name_segments({0: {"views_30d": 2.0}}, empty=frozenset({0}))
    assert names[0] == SegmentName(EMPTY, {})
    assert name_segments({0: {"views_30d": 2.0}}, names)[0].name == "frequent browsers"


def _shopper(purchases: float, views: float, cart: float) -> tuple[float, ...]:
    v = [0.0] * len(FEATURE_NAMES)
    v[FEATURE_INDEX["purchases_30d"]] = purchases
    v[FEATURE_INDEX["spend_30d"]] = 80.0 * purchases
    v[FEATURE_INDEX["hours_since_purchase"]] = 48.0 if purchases else 720.0
    v[FEATURE_INDEX["views_30d"]] = views
    v[FEATURE_INDEX["cart_value"]] = cart
    return tuple(v)


def _two_kinds_of_shopper(snapshot: ModelSnapshot, n: int = 3000, seed: int = 4) -> None:
    rng = random.Random(seed)
    for _ in range(n):
        if rng.random() < 0.5:  # browse a lot, fill carts, never buy
            x = _shopper(0.0, rng.uniform(60, 90), rng.uniform(150, 250))
        else:  # come to buy: few views, small carts, orders every week
            x = _shopper(rng.choice([3.0, 4.0, 5.0]), rng.uniform(2, 6), rng.uniform(10, 30))
        snapshot.learn(x, "add_to_cart", "none", 0, redeemed=False)


def test_learned_segments_are_named_after_the_users_in_them() -> None:
    snapshot = ModelSnapshot.initial(ACTIONS, n_segments=2, seed=4)
    assert [snapshot.segmenter.name_of(i) for i in (0, 1)] == [EMPTY, EMPTY]
    _two_kinds_of_shopper(snapshot)
    assert snapshot.segmenter.name_of(0) == EMPTY  # learning alone names nothing
    snapshot.number_and_name(1)
    segmenter = snapshot.segmenter
    browser = segmenter.name_of(segmenter.segment(_shopper(0.0, 75.0, 200.0)))
    buyer = segmenter.name_of(segmenter.segment(_shopper(4.0, 4.0, 20.0)))
    # One word per theme: "no recent purchase" stands for low spend and rarely buying too.
    assert browser == "no recent purchase, high cart value, frequent browsers"
    assert buyer == "bought recently, rarely browse, low cart value"
    assert sorted(segmenter.sizes.values()) == [1458, 1542]


def test_names_travel_with_the_snapshot_and_stay_across_versions() -> None:
    snapshot = ModelSnapshot.initial(ACTIONS, n_segments=2, seed=4)
    _two_kinds_of_shopper(snapshot)
    snapshot.number_and_name(1)
    names = dict(snapshot.segmenter.names)
    copy = ModelSnapshot.from_bytes(snapshot.to_bytes(), snapshot.layout)
    assert copy.segmenter.names == names
    _two_kinds_of_shopper(copy, n=300, seed=5)  # the same shoppers: the centres stay put
    copy.number_and_name(2)
    assert copy.segmenter.names == names


def test_a_snapshot_from_before_names_loads_and_names_its_segments() -> None:
    snapshot = ModelSnapshot.initial(ACTIONS, n_segments=2, seed=4)
    _two_kinds_of_shopper(snapshot)
    snapshot.number_and_name(1)
    envelope = orjson.loads(snapshot.to_bytes())
    state = envelope["payload"]["segmenter"]
    del state["names"], state["sizes"]
    from streams.models import _checksum

    envelope["sha256"] = _checksum(envelope["payload"])
    old = ModelSnapshot.from_bytes(orjson.dumps(envelope), snapshot.layout)
    assert old.segmenter.names == snapshot.segmenter.names


# --- rule segments ---------------------------------------------------------------------------


def _vector(**features: float) -> tuple[float, ...]:
    v = [0.0] * len(FEATURE_NAMES)
    v[FEATURE_INDEX["hours_since_purchase"]] = 720.0  # the cap: no purchase in 30 days
    for name, value in features.items():
        v[FEATURE_INDEX[name]] = value
    return tuple(v)


@pytest.mark.parametrize(
    ("features", "segment"),
    [
        # high_value: 30-day spend at the threshold (300), whatever else
        (dict(spend_30d=300.0, purchases_30d=1, hours_since_purchase=500.0), "high_value"),
        (dict(spend_30d=299.99, purchases_30d=1, hours_since_purchase=10.0), "regular"),
        # a buyer: regular within 14 days of the last purchase, at risk from then on
        (dict(spend_30d=50.0, purchases_30d=1, hours_since_purchase=335.9), "regular"),
        (dict(spend_30d=50.0, purchases_30d=1, hours_since_purchase=336.0), "at_risk"),
        (dict(spend_30d=50.0, purchases_30d=2, hours_since_purchase=719.0), "at_risk"),
        # no purchase in 30 days: new while nothing is older than the last 7 days
        (dict(), "new"),
        (dict(views_7d=12.0, views_30d=12.0), "new"),
        (dict(views_7d=12.0, views_30d=13.0), "potential"),
        (dict(views_7d=0.0, views_30d=3.0, abandoned_carts_30d=1.0), "potential"),
    ],
)
def test_rule_segments_at_their_thresholds(features: dict[str, float], segment: str) -> None:
    assert rule_segment(_vector(**features)) == segment
    assert segment in RULE_SEGMENTS


def test_the_high_value_spend_is_the_shops() -> None:
    v = _vector(spend_30d=120.0, purchases_30d=1, hours_since_purchase=5.0)
    assert (rule_segment(v), rule_segment(v, high_value_spend=100.0)) == ("regular", "high_value")


# --- with every decision -----------------------------------------------------------------------


def _cart_add(n: int, ts: int, group: str | None = None) -> ClickEvent:
    return ClickEvent(
        f"e{n}",
        "u1",
        ts,
        EventType.ADD_TO_CART,
        item_id="i1",
        category="shoes",
        price=40.0,
        quantity=1,
        group=group,
    )


def test_each_decision_names_the_users_segments_and_group() -> None:
    engine = make_engine()
    engine.snapshot.number_and_name(1)
    state, out = engine.new_state(), EngineOutput()
    engine.handle(state, _cart_add(1, T0, group="north"), out)
    engine.handle(state, _cart_add(2, T0 + 2 * 3_600_000), out)  # no group: still north's
    first, second = out.decisions
    assert (first.rule_segment, first.group) == ("new", "north")
    assert (second.rule_segment, second.group) == ("new", "north")
    assert first.segment_name == engine.snapshot.segmenter.name_of(first.segment) == EMPTY


def test_the_same_seed_gives_the_same_segments_in_another_process() -> None:
    # River draws a centre's random start in the order of a set of feature names, which
    # follows the hash seed; the segmenter draws them in a fixed order first.
    script = (
        "from streams.models import Segmenter; from tests.unit.test_segments import _shopper; "
        "s = Segmenter(3, seed=1); s.learn(_shopper(1.0, 5.0, 20.0)); "
        "print(sorted(s.to_state()['kmeans']['centers']['2'].items()))"
    )
    root = Path(__file__).resolve().parents[2]
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


@pytest.mark.parametrize(
    "state", [["typical shoppers"], [3, {}], ["typical shoppers", {"views_30d": "far"}], None]
)
def test_a_damaged_name_in_a_snapshot_is_a_model_error_not_an_assertion(state: object) -> None:
    # The learner and workers handle ModelError (a snapshot they cannot use); an assert would
    # vanish under python -O and let a damaged name through.
    with pytest.raises(ModelError, match="segment name state"):
        SegmentName.from_state(state)


def test_the_decision_schema_lists_exactly_the_rule_segments_the_code_gives() -> None:
    # The schema is written by hand beside RULE_SEGMENTS: a segment added to one and not the
    # other would make valid decisions fail consumers' validation, or promise one never sent.
    schema = json.loads((JSON_SCHEMA_DIR / "decision.schema.json").read_text())
    enum = schema["properties"]["rule_segment"]["enum"]
    assert enum == ["", *RULE_SEGMENTS]  # '' on decisions logged before rule segments


def test_the_schemas_bound_a_group_as_the_validator_does() -> None:
    for name in ("decision.schema.json", "clickstream-event.schema.json"):
        group = json.loads((JSON_SCHEMA_DIR / name).read_text())["properties"]["group"]
        assert group["maxLength"] == MAX_GROUP, name

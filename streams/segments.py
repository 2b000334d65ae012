"""Segments analysts can read: names for the learned clusters, and rule-based segments.

**Cluster names.** The k-means centres (``streams.models.Segmenter``) live in standard units of
the population: each segment input is ``log1p`` of the feature, scaled by the running mean and
standard deviation over the training examples the learner read (one per closed decision, so a
user decided often weighs more than one decided once). A centre's coordinate is therefore how
far its decisions' users sit from the average, in standard deviations. A segment is named by
the inputs where its centre is at least ``DISTINCT_SD`` away from the average, the farthest
first, at most ``MAX_WORDS`` of them, each in the shop's words ("frequent browsers, high cart
value, rarely buy"); a centre near the average on every input is "typical shoppers".

Names are stable: each segment keeps the centre it was named at (its anchor), and is named
again only when its centre has moved more than ``RENAME_SD`` standard deviations (Euclidean,
over the segment inputs) from that anchor. A centre that drifts a little keeps its name even
where a word's threshold is crossed; a centre that genuinely moved is named from where it
stands. Names are computed when the learner builds a snapshot, never per event: a decision
reads its segment's name from the snapshot.

>>> names = name_segments({0: {"views_30d": 1.4, "purchases_30d": -0.9, "cart_value": 0.8}})
>>> names[0].name
'frequent browsers, rarely buy, high cart value'
>>> moved_a_little = {0: {"views_30d": 1.4, "purchases_30d": -0.3, "cart_value": 0.8}}
>>> name_segments(moved_a_little, names)[0].name  # 0.6 sd from its anchor: keeps its name
'frequent browsers, rarely buy, high cart value'

**Rule segments** are the familiar groups, read off the feature vector at the decision with
a few comparisons (first match wins):

- ``high_value``: spent at least ``high_value_spend`` in the last 30 days (the shop's currency:
  ``PROMO_HIGH_VALUE_SPEND_30D``, 300 by default);
- ``regular``: bought within the last ``AT_RISK_AFTER_DAYS`` (14) days;
- ``at_risk``: bought within 30 days, but not in the last 14 (lapsing);
- ``new``: no purchase in 30 days and nothing seen of them before the last 7 days (every view
  of their 30 days falls in the last 7);
- ``potential``: no purchase in 30 days, known for longer than a week: browsing, not buying.

The features remember 30 days (a user idle for 31 is forgotten and comes back as new), so a
customer whose last purchase is older than that is ``potential`` here, not ``at_risk``.

>>> from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
>>> v = [0.0] * len(FEATURE_NAMES)
>>> v[FEATURE_INDEX["hours_since_purchase"]] = 720.0  # the cap: no purchase in 30 days
>>> v[FEATURE_INDEX["views_7d"]] = v[FEATURE_INDEX["views_30d"]] = 4.0
>>> rule_segment(tuple(v))
'new'
>>> v[FEATURE_INDEX["views_30d"]] = 9.0  # five views before this week
>>> rule_segment(tuple(v))
'potential'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from streams.errors import ModelError
from streams.feature_vector import FEATURE_INDEX

#: The k-means inputs, in order (``streams.models``), each with what a centre far above and
#: far below the average says about its users.
SEGMENT_WORDS: dict[str, tuple[str, str]] = {
    "views_30d": ("frequent browsers", "rarely browse"),
    "purchases_30d": ("frequent buyers", "rarely buy"),
    "spend_30d": ("high spend", "low spend"),
    "hours_since_purchase": ("no recent purchase", "bought recently"),
    "cart_value": ("high cart value", "low cart value"),
    "abandoned_carts_30d": ("abandon carts", "seldom abandon carts"),
    "offers_clicked_30d": ("click offers", "rarely click offers"),
}
#: Inputs that tell the same story: a segment of non-buyers is far from the average on
#: purchases, spend and recency alike, and "rarely buy, low spend, no recent purchase" says one
#: thing three times. Each theme gives at most one word, its farthest input's.
THEMES: dict[str, str] = {
    "views_30d": "browsing",
    "purchases_30d": "buying",
    "spend_30d": "buying",
    "hours_since_purchase": "buying",
    "cart_value": "cart",
    "abandoned_carts_30d": "abandonment",
    "offers_clicked_30d": "offers",
}
#: An input names a segment when its centre is this many standard deviations from the average.
DISTINCT_SD = 0.5
MAX_WORDS = 3
#: A named segment is named again once its centre moved this far from where it was named.
RENAME_SD = 0.75
TYPICAL = "typical shoppers"
#: A segment no user has been assigned to yet: its centre is still its random start.
EMPTY = "no users yet"


@dataclass(frozen=True, slots=True)
class SegmentName:
    """A segment's description and the centre it was given at (standard units per input)."""

    name: str
    anchor: dict[str, float]

    def to_state(self) -> list[object]:
        return [self.name, self.anchor]

    @classmethod
    def from_state(cls, state: object) -> SegmentName:
        """A name as ``to_state`` wrote it; anything else is a snapshot this code cannot
        read (``ModelError``, which the learner and workers handle), not a bug to assert on.

        >>> SegmentName.from_state(["typical shoppers", {"views_30d": 0.1}]).name
        'typical shoppers'
        >>> SegmentName.from_state(["typical shoppers"])
        Traceback (most recent call last):
        ...
        streams.errors.ModelError: segment name state must be [name, {input: sd}], got [...]
        """
        match state:
            case [str(name), dict(anchor)]:
                try:
                    return cls(name, {str(k): float(v) for k, v in anchor.items()})
                except (TypeError, ValueError):
                    pass
        raise ModelError(f"segment name state must be [name, {{input: sd}}], got {state!r:.200}")


def describe_centre(centre: Mapping[str, float]) -> str:
    """The centre's distinct inputs in words, the farthest from the average first, one word
    per theme (``THEMES``).

    >>> describe_centre({"spend_30d": 1.2, "hours_since_purchase": -0.7, "cart_value": 0.6})
    'high spend, high cart value'
    >>> describe_centre({"views_30d": 0.2})
    'typical shoppers'
    """
    distinct = sorted(
        (-abs(z), name) for name in SEGMENT_WORDS if abs(z := centre.get(name, 0.0)) >= DISTINCT_SD
    )
    words: dict[str, str] = {}  # theme -> its word, farthest first
    for _, name in distinct:
        words.setdefault(THEMES[name], SEGMENT_WORDS[name][0 if centre[name] > 0 else 1])
    return ", ".join(list(words.values())[:MAX_WORDS]) or TYPICAL


def centre_distance(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Euclidean distance over the segment inputs, in standard deviations."""
    return math.sqrt(sum((a.get(n, 0.0) - b.get(n, 0.0)) ** 2 for n in SEGMENT_WORDS))


def name_segments(
    centres: Mapping[int, Mapping[str, float]],
    previous: Mapping[int, SegmentName] | None = None,
    empty: frozenset[int] = frozenset(),
) -> dict[int, SegmentName]:
    """Each segment's name: its previous one while its centre stays within ``RENAME_SD`` of
    where that name was given, else a new one from the centre as it stands. Segments in
    ``empty`` (no user assigned yet) are ``EMPTY`` and keep no anchor."""
    previous = previous or {}
    names: dict[int, SegmentName] = {}
    for segment, centre in centres.items():
        if segment in empty:
            names[segment] = SegmentName(EMPTY, {})
            continue
        here = {n: float(centre.get(n, 0.0)) for n in SEGMENT_WORDS}
        before = previous.get(segment)
        if (
            before is not None
            and before.anchor
            and centre_distance(here, before.anchor) <= RENAME_SD
        ):
            names[segment] = before
        else:
            names[segment] = SegmentName(describe_centre(here), here)
    return names


# --- rule segments -------------------------------------------------------------------------

HIGH_VALUE = "high_value"
REGULAR = "regular"
AT_RISK = "at_risk"
NEW = "new"
POTENTIAL = "potential"
RULE_SEGMENTS = (NEW, POTENTIAL, REGULAR, HIGH_VALUE, AT_RISK)

#: 30-day spend from which a user is high-value, in the shop's currency (a shop with another
#: price level sets ``PROMO_HIGH_VALUE_SPEND_30D``).
HIGH_VALUE_SPEND_30D = 300.0
#: A buyer whose last purchase is at least this old (and within 30 days) is at risk.
AT_RISK_AFTER_DAYS = 14

_SPEND_30D = FEATURE_INDEX["spend_30d"]
_PURCHASES_30D = FEATURE_INDEX["purchases_30d"]
_HOURS_SINCE_PURCHASE = FEATURE_INDEX["hours_since_purchase"]
_VIEWS_7D = FEATURE_INDEX["views_7d"]
_VIEWS_30D = FEATURE_INDEX["views_30d"]


def rule_segment(vector: tuple[float, ...], high_value_spend: float = HIGH_VALUE_SPEND_30D) -> str:
    """The user's rule segment from their feature vector (see the module docstring).

    >>> from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES
    >>> v = [0.0] * len(FEATURE_NAMES)
    >>> v[FEATURE_INDEX["purchases_30d"]], v[FEATURE_INDEX["spend_30d"]] = 1.0, 80.0
    >>> v[FEATURE_INDEX["hours_since_purchase"]] = 20 * 24.0
    >>> rule_segment(tuple(v)), rule_segment(tuple(v), high_value_spend=50.0)
    ('at_risk', 'high_value')
    """
    if vector[_SPEND_30D] >= high_value_spend:
        return HIGH_VALUE
    if vector[_PURCHASES_30D] > 0:
        recent = vector[_HOURS_SINCE_PURCHASE] < AT_RISK_AFTER_DAYS * 24
        return REGULAR if recent else AT_RISK
    if vector[_VIEWS_30D] <= vector[_VIEWS_7D]:
        return NEW
    return POTENTIAL

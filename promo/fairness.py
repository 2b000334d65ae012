"""The report's fairness figures: per group of users, who is offered promotions, how much
discount they get, and what the promotion does to them, read from the view ``v_fairness``.

Users are grouped four ways (``DIMENSIONS``), each user by their *first* decision (migration
0010): the k-means segment, the rule segment, new vs returning, and the group the platform
sent. The first decision's groups are fixed before any offer could touch the user, so within
a group the treatment and control users are still two random samples, and the per-user
effect is the headline's comparison on them (Newcombe for conversion, the wider of Welch's
and the pooled interval for net profit, ``streams.evaluation``), without CUPED. The offer rate
is offers sent per treated decision (descriptive: a user's decisions are not independent);
the alert on it is ``streams.fairness``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_driver import Client

from streams.evaluation import (
    Estimate,
    Moments,
    mean_difference,
    mean_interval,
    net_profit_moments,
    proportion_difference,
)
from streams.fairness import DEFAULT_MAX_RATIO, Disparity, OfferRate, offer_rate_disparities

Row = dict[str, Any]

#: (the view's dimension, what to call it), in the report's order.
DIMENSIONS = (
    ("segment", "k-means segment"),
    ("rule_segment", "rule segment"),
    ("new_vs_returning", "new vs returning"),
    ("group", "platform group"),
)
#: A group without a value: what it means in each dimension.
_EMPTY_LABELS = {"group": "(none sent)"}
_NOT_LOGGED = "(not logged)"  # decisions written before migration 0010


@dataclass(frozen=True)
class GroupFairness:
    """One group of one dimension; the effects are None without two users in each arm."""

    dimension: str
    group: str
    treated_users: int
    control_users: int
    disparity: Disparity | None  # None: no treated decision in the group
    discount_per_user: Estimate | None  # treated users
    conversion: Estimate | None  # per user, treatment - control (points as a share)
    net: Estimate | None  # net profit per user, treatment - control

    @property
    def flagged(self) -> bool:
        return self.disparity is not None and self.disparity.flagged


@dataclass(frozen=True)
class Fairness:
    """Every dimension's groups, and the threshold they were judged by."""

    max_ratio: float
    dimensions: dict[str, list[GroupFairness]]

    def flagged(self) -> list[GroupFairness]:
        return [g for groups in self.dimensions.values() for g in groups if g.flagged]


def segment_labels(client: Client) -> dict[int, str]:
    """Each k-means segment's id with its latest name (``v_segment_names``): ``3 frequent
    browsers, ...``; a segment logged before names existed is absent."""
    rows = client.execute("SELECT segment, name FROM v_segment_names")
    return {int(segment): f"{segment} {name}" for segment, name in rows}


def read_fairness(
    client: Client, *, gross_margin: float, max_ratio: float = DEFAULT_MAX_RATIO
) -> Fairness:
    rows, columns = client.execute(
        "SELECT * FROM v_fairness ORDER BY dimension, group_name, arm", with_column_types=True
    )
    names = [name for name, _ in columns]
    by_group: dict[tuple[str, str], dict[str, Row]] = {}
    for values in rows:
        r = dict(zip(names, values, strict=True))
        by_group.setdefault((r["dimension"], r["group_name"]), {})[r["arm"]] = r
    labels = segment_labels(client)
    dimensions = {}
    for dimension, _ in DIMENSIONS:
        keys = [group for d, group in by_group if d == dimension]
        if dimension == "segment":
            keys.sort(key=lambda g: int(g) if g.isdigit() else -1)
        arms = [by_group[(dimension, g)] for g in keys]
        shown = [_label(dimension, g, labels) for g in keys]
        dimensions[dimension] = fairness_of(dimension, shown, arms, gross_margin, max_ratio)
    return Fairness(max_ratio, dimensions)


def fairness_of(
    dimension: str,
    groups: Sequence[str],
    arms: Sequence[dict[str, Row]],
    gross_margin: float,
    max_ratio: float,
) -> list[GroupFairness]:
    """The groups of one dimension from their ``v_fairness`` rows (by arm)."""
    rates = [
        OfferRate(g, a["treatment"]["sum_offers"], a["treatment"]["sum_decisions"])
        for g, a in zip(groups, arms, strict=True)
        if "treatment" in a
    ]
    disparities = {d.group: d for d in offer_rate_disparities(rates, max_ratio)}
    return [
        _group(dimension, g, a.get("treatment"), a.get("control"), disparities.get(g), gross_margin)
        for g, a in zip(groups, arms, strict=True)
    ]


def _group(
    dimension: str,
    group: str,
    t: Row | None,
    c: Row | None,
    disparity: Disparity | None,
    margin: float,
) -> GroupFairness:
    conversion = net = None
    if t is not None and c is not None and t["users"] >= 2 and c["users"] >= 2:
        conversion = proportion_difference(t["converters"], t["users"], c["converters"], c["users"])
        net = mean_difference(_net(t, margin), _net(c, margin))
    discount = None
    if t is not None:
        discount = mean_interval(Moments(t["users"], t["sum_discount"], t["sum_discount_sq"]))
    return GroupFairness(
        dimension,
        group,
        t["users"] if t is not None else 0,
        c["users"] if c is not None else 0,
        disparity,
        discount,
        conversion,
        net,
    )


def _net(r: Row, margin: float) -> Moments:
    return net_profit_moments(
        r["users"],
        r["sum_rate_base"],
        r["sum_rate_base_sq"],
        r["sum_net_fixed"],
        r["sum_net_fixed_sq"],
        r["sum_rate_base_net_fixed"],
        margin,
    )


def _label(dimension: str, group: str, segments: dict[int, str]) -> str:
    if dimension == "segment":
        return segments.get(int(group), group)
    return group or _EMPTY_LABELS.get(dimension, _NOT_LOGGED)

"""The report's fairness figures: per group, who is offered promotions, how much discount they
get, and what the promotion does to them.

Two grains, each for what it can answer honestly:

- **Offers, discounts, conversion: at each decision** (view ``v_by_group``). A decision
  counts in the groups it was logged with (``DIMENSIONS``): its k-means segment under the
  name logged with it, its rule segment, new vs returning (the rule segment ``new`` or not),
  its platform group. So a user who buys moves from ``new`` to ``regular`` and is counted
  there from then on. Intervals take the user as the unit (``streams.fairness``). The
  conversion difference, treatment - control decisions within a group, is descriptive: a
  decision's group can follow from earlier offers (an offer that sold moves its user to
  ``regular``), so within a group the arms are not two random samples.
- **The effect per user** (``EFFECT_DIMENSIONS``), grouped by what was fixed before the
  user's first decision, so that within a group treatment and control users are two random
  samples and the headline's maths applies (Newcombe for conversion, ``mean_difference`` for
  net profit, no CUPED): whether they bought in the pre-period (the days before their first
  decision that the headline's CUPED covariate reads, ``PRE_PERIOD_DAYS``), and the platform
  group of their first decision (``v_user_groups``). Not by segment: a segment at the first
  decision says little (nearly every user is ``new`` or ``potential`` then, because the
  decision points come before purchases), and a later one can follow from the offers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from clickhouse_driver import Client

from promo.clickhouse import query
from streams.evaluation import Estimate, Moments, mean_difference, proportion_difference
from streams.fairness import (
    DEFAULT_MAX_RATIO,
    PLACEHOLDER,
    ClusteredRatio,
    Disparity,
    OfferRate,
    offer_rate_disparities,
    ratio_difference,
)

Row = dict[str, Any]
Floats = npt.NDArray[np.float64]

#: (the view's dimension, what to call it), in the report's order: groups of decisions.
DIMENSIONS = (
    ("segment", "k-means segment (id and the name logged with the decision)"),
    ("rule_segment", "rule segment"),
    ("new_vs_returning", "new vs returning (rule segment new or not)"),
    ("group", "platform group"),
)
#: Groups of users for the per-user effect, by what was fixed before their first decision.
EFFECT_DIMENSIONS = (
    ("pre_period", "purchase in the pre-period (before the first decision)"),
    ("first_group", "platform group at the first decision"),
)
BOUGHT, NOT_BOUGHT = "bought in the pre-period", "no purchase in the pre-period"
#: A placeholder group: what it means in each dimension.
_PLACEHOLDER_LABELS = {"group": "(none sent)", "first_group": "(none sent)"}
_NOT_LOGGED = "(not logged)"  # decisions written before migration 0010

# Each user's platform group at their first decision, with the headline's per-user outcomes
# (the same v_user_outcomes columns USERS_SQL reads).
FIRST_GROUP_SQL = """
SELECT arm, first_user_group, converted, rate_base, net_fixed
FROM v_user_outcomes
ANY INNER JOIN
(
    SELECT user_id, first_user_group FROM v_user_groups
) AS user_groups USING user_id
"""


class ArmUsers(Protocol):
    """One arm's users as the headline reads them (``promo.report_figures.UserFigures``)."""

    @property
    def converted(self) -> Floats: ...
    @property
    def pre_purchases(self) -> Floats: ...
    def net(self, margin: float) -> Floats: ...


@dataclass(frozen=True)
class GroupOffers:
    """One group of decisions: offers, discount and conversion, the user as the unit."""

    dimension: str
    group: str  # as shown
    treated_users: int
    control_users: int
    treated_decisions: int
    disparity: Disparity | None  # None: no treated decision, or a placeholder group
    discount_per_decision: Estimate | None  # treated decisions
    conversion: Estimate | None  # per decision, treatment - control (descriptive)

    @property
    def flagged(self) -> bool:
        return self.disparity is not None and self.disparity.flagged


@dataclass(frozen=True)
class GroupEffect:
    """One group of users; the effects are None without two users in each arm."""

    dimension: str
    group: str
    treated_users: int
    control_users: int
    conversion: Estimate | None  # per user, treatment - control (points as a share)
    net: Estimate | None  # net profit per user, treatment - control


@dataclass(frozen=True)
class Fairness:
    """Every dimension's groups, and the threshold they were judged by."""

    max_ratio: float
    dimensions: dict[str, list[GroupOffers]]
    effects: dict[str, list[GroupEffect]]

    def flagged(self) -> list[GroupOffers]:
        return [g for groups in self.dimensions.values() for g in groups if g.flagged]


def read_fairness(
    client: Client,
    users: Mapping[str, ArmUsers],
    *,
    gross_margin: float,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> Fairness:
    """Both grains; ``users`` are the headline's per-user figures by arm."""
    by_group: dict[tuple[str, str], dict[str, Row]] = {}
    for r in query(client, "SELECT * FROM v_by_group ORDER BY dimension, group_name, arm"):
        by_group.setdefault((r["dimension"], r["group_name"]), {})[r["arm"]] = r
    dimensions = {}
    for dimension, _ in DIMENSIONS:
        keys = [group for d, group in by_group if d == dimension]
        if dimension == "segment":
            keys.sort(key=_segment_order)
        arms = [by_group[(dimension, g)] for g in keys]
        dimensions[dimension] = offers_of(dimension, keys, arms, max_ratio)
    effects = {
        "pre_period": pre_period_effects(users, gross_margin),
        "first_group": first_group_effects(client, gross_margin),
    }
    return Fairness(max_ratio, dimensions, effects)


def offers_of(
    dimension: str, keys: Sequence[str], arms: Sequence[dict[str, Row]], max_ratio: float
) -> list[GroupOffers]:
    """The groups of one dimension from their ``v_by_group`` rows (by arm), keyed as logged."""
    rates = [
        OfferRate(k, offers(a["treatment"]))
        for k, a in zip(keys, arms, strict=True)
        if "treatment" in a
    ]
    disparities = {d.group: d for d in offer_rate_disparities(rates, max_ratio)}
    groups = []
    for key, a in zip(keys, arms, strict=True):
        t, c = a.get("treatment"), a.get("control")
        groups.append(
            GroupOffers(
                dimension,
                label(dimension, key),
                t["users"] if t else 0,
                c["users"] if c else 0,
                t["decisions"] if t else 0,
                disparities.get(key),
                _per_decision(t, "discount").interval() if t else None,
                ratio_difference(_per_decision(t, "conversions"), _per_decision(c, "conversions"))
                if t and c
                else None,
            )
        )
    return groups


def offers(r: Row) -> ClusteredRatio:
    """Offers sent over decisions, per user, of one ``v_by_group`` row."""
    return _per_decision(r, "offers")


def _per_decision(r: Row, name: str) -> ClusteredRatio:
    total = r["sum_discount"] if name == "discount" else r[name]
    return ClusteredRatio(
        r["users"],
        total,
        r["decisions"],
        r[f"sum_user_{name}_sq"],
        r["sum_user_decisions_sq"],
        r[f"sum_user_{name}_decisions"],
    )


def pre_period_effects(users: Mapping[str, ArmUsers], margin: float) -> list[GroupEffect]:
    """The per-user effect among users who bought in the pre-period, and among those who
    did not: the headline's own users and figures, split."""
    t, c = users.get("treatment"), users.get("control")
    if t is None or c is None:
        return []
    groups = []
    for name, bought in ((BOUGHT, True), (NOT_BOUGHT, False)):
        in_t, in_c = (t.pre_purchases > 0) == bought, (c.pre_purchases > 0) == bought
        groups.append(
            effect_of(
                "pre_period",
                name,
                (t.converted[in_t], t.net(margin)[in_t]),
                (c.converted[in_c], c.net(margin)[in_c]),
            )
        )
    return groups


def first_group_effects(client: Client, margin: float) -> list[GroupEffect]:
    columns = client.execute(FIRST_GROUP_SQL, columnar=True)
    if not columns:
        return []
    arm, group, *values = (np.asarray(column) for column in columns)
    converted, rate_base, net_fixed = (v.astype(float) for v in values)
    net = net_fixed + margin * rate_base
    effects = []
    for key in sorted(set(group.tolist())):
        in_t, in_c = (group == key) & (arm == "treatment"), (group == key) & (arm == "control")
        effects.append(
            effect_of(
                "first_group",
                label("first_group", key),
                (converted[in_t], net[in_t]),
                (converted[in_c], net[in_c]),
            )
        )
    return effects


def effect_of(
    dimension: str, group: str, t: tuple[Floats, Floats], c: tuple[Floats, Floats]
) -> GroupEffect:
    """Treatment - control per user from each arm's (converted, net profit) per user."""
    (t_converted, t_net), (c_converted, c_net) = t, c
    conversion = net = None
    if len(t_net) >= 2 and len(c_net) >= 2:
        conversion = proportion_difference(
            int(t_converted.sum()), len(t_converted), int(c_converted.sum()), len(c_converted)
        )
        net = mean_difference(Moments.of(t_net), Moments.of(c_net))
    return GroupEffect(dimension, group, len(t_net), len(c_net), conversion, net)


def label(dimension: str, key: str) -> str:
    """A group as shown: its logged value, or what a placeholder means."""
    if key != PLACEHOLDER:
        return key
    return _PLACEHOLDER_LABELS.get(dimension, _NOT_LOGGED)


def _segment_order(key: str) -> tuple[int, str]:
    """Segments by id, then by the name logged ("10 ..." after "9 ...")."""
    segment, _, name = key.partition(" ")
    return (int(segment) if segment.isdigit() else -1, name)

"""Fairness: the offer-rate ratio between groups, its user-clustered intervals and its alert
(streams/fairness.py), the groups' figures from the view's rows (promo/fairness.py), and how
the report shows them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from promo.fairness import Fairness, effect_of, offers_of
from promo.report import fairness_alerts, fairness_section
from promo.report_charts import fairness_chart
from streams.evaluation import proportion_difference, wilson_interval
from streams.fairness import ClusteredRatio, OfferRate, offer_rate_disparities

MARGIN = 0.3


def _independent(group: str, offers: int, decisions: int) -> OfferRate:
    """``decisions`` users of one decision each: the clustered interval is Wilson's."""
    return OfferRate(group, ClusteredRatio.independent(offers, decisions))


def _per_user(group: str, users: list[tuple[int, int]]) -> OfferRate:
    """A group from each user's (offers, decisions)."""
    y, x = np.array([u[0] for u in users], float), np.array([u[1] for u in users], float)
    return OfferRate(
        group,
        ClusteredRatio(
            len(users),
            float(y.sum()),
            float(x.sum()),
            float((y * y).sum()),
            float((x * x).sum()),
            float((x * y).sum()),
        ),
    )


@pytest.mark.parametrize(
    ("offers", "decisions", "ratio", "flagged", "clear"),
    [
        (400, 1000, 1.0, False, False),  # the highest itself
        (330, 1000, 400 / 330, False, False),  # under 1.25: not flagged
        (300, 1000, 400 / 300, True, False),  # 1.33, but 1.12 at the intervals' ends
        (250, 1000, 1.6, True, True),  # 1.33 even at the intervals' ends
        (3, 10, 400 / 300, True, False),  # the same rate on 10 decisions: maybe noise
        (0, 1000, math.inf, True, True),  # offered nothing
    ],
)
def test_a_group_is_flagged_beyond_the_ratio_and_clear_beyond_its_noise(
    offers: int, decisions: int, ratio: float, flagged: bool, clear: bool
) -> None:
    top, group = offer_rate_disparities(
        [_independent("top", 400, 1000), _independent("group", offers, decisions)],
        max_ratio=1.25,
    )
    assert (top.ratio, top.flagged) == (1.0, False)
    assert (group.ratio, group.flagged, group.clear) == (pytest.approx(ratio), flagged, clear)


def test_one_decision_per_user_gives_about_wilsons_interval() -> None:
    rate = _independent("a", 300, 1000).estimate()
    wilson = wilson_interval(300, 1000)
    assert (rate.value, rate.low, rate.high) == pytest.approx(
        (wilson.value, wilson.low, wilson.high), rel=0.01
    )


@pytest.mark.parametrize(
    "heavy",
    [
        [(0, 500), (100, 500)],  # two users, a thousand decisions: 10 %
        [(0, 300), (0, 300), (0, 300)],  # three users offered nothing in 900 decisions
        [(0, 300), (10, 300), (50, 300)],  # three users, 60 offers in 900 decisions
    ],
)
def test_a_few_heavy_users_never_make_a_clear_alert(heavy: list[tuple[int, int]]) -> None:
    # Counted as independent decisions, each of these is a clear ALERT; a few users are a
    # few observations, however many decisions they had.
    top = _independent("top", 400, 1000)
    offers = sum(o for o, _ in heavy)
    decisions = sum(d for _, d in heavy)
    naive = offer_rate_disparities([top, _independent("heavy", offers, decisions)], 1.25)[1]
    assert naive.flagged and naive.clear
    clustered = offer_rate_disparities([top, _per_user("heavy", heavy)], 1.25)[1]
    assert clustered.flagged and not clustered.clear
    assert clustered.ratio == naive.ratio


def test_many_users_with_few_decisions_each_still_alert_clearly() -> None:
    group = _per_user("many", [(1, 4)] * 100 + [(0, 4)] * 300)  # 100 of 1,600 decisions
    (_, d) = offer_rate_disparities([_independent("top", 400, 1000), group], 1.25)
    assert d.flagged and d.clear


def test_the_placeholder_group_is_neither_flagged_nor_the_reference() -> None:
    # '' is "(not logged)" or "(none sent)": no group of users.
    most = offer_rate_disparities(
        [_independent("", 100, 100), _independent("a", 50, 100), _independent("b", 45, 100)],
        1.25,
    )
    assert [(d.group, d.ratio) for d in most] == [("a", 1.0), ("b", pytest.approx(50 / 45))]
    least = offer_rate_disparities([_independent("", 0, 500), _independent("a", 50, 100)], 1.25)
    assert [d.group for d in least] == ["a"] and not any(d.flagged for d in least)


def test_the_threshold_is_the_settings() -> None:
    rates = [_independent("a", 400, 1000), _independent("b", 300, 1000)]
    assert [d.flagged for d in offer_rate_disparities(rates, max_ratio=1.25)] == [False, True]
    assert [d.flagged for d in offer_rate_disparities(rates, max_ratio=1.5)] == [False, False]
    with pytest.raises(ValueError, match="above 1"):
        offer_rate_disparities(rates, max_ratio=1.0)


def test_groups_without_treated_decisions_or_offers_flag_nothing() -> None:
    assert offer_rate_disparities([], 1.25) == []
    assert offer_rate_disparities([_independent("a", 0, 0)], 1.25) == []
    (nobody,) = offer_rate_disparities([_independent("a", 0, 50)], 1.25)
    assert math.isnan(nobody.ratio) and not nobody.flagged


def test_the_clustered_ratio_matches_a_recomputation_per_user() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(1, 20, size=200).astype(float)
    y = rng.binomial(x.astype(int), 0.3).astype(float)
    r = ClusteredRatio(200, y.sum(), x.sum(), (y * y).sum(), (x * x).sum(), (x * y).sum())
    ratio = y.sum() / x.sum()
    residual = y - ratio * x
    expected = (residual**2).sum() / 199 / (200 * x.mean() ** 2)
    assert r.value == pytest.approx(ratio) and r.variance() == pytest.approx(expected)


def _row(users: int, decisions: int, offers: int, conversions: int) -> dict[str, Any]:
    """A v_by_group row of users with one decision each (no discount)."""
    return {
        "users": users,
        "decisions": decisions,
        "offers": offers,
        "conversions": conversions,
        "sum_discount": 0.0,
        "sum_user_decisions_sq": decisions,
        "sum_user_offers_sq": offers,
        "sum_user_offers_decisions": offers,
        "sum_user_conversions_sq": conversions,
        "sum_user_conversions_decisions": conversions,
        "sum_user_discount_sq": 0.0,
        "sum_user_discount_decisions": 0.0,
    }


def flagged_south() -> Fairness:
    """Two platform groups; south is offered a quarter of north's rate."""
    groups = offers_of(
        "group",
        ["north", "south"],
        [
            {"treatment": _row(150, 150, 60, 30), "control": _row(30, 30, 0, 4)},
            {"treatment": _row(150, 150, 15, 20), "control": _row(30, 30, 0, 4)},
        ],
        1.25,
    )
    effect = effect_of(
        "first_group",
        "north",
        (np.array([1.0, 0.0, 0.0]), np.array([15.0, 0.0, 0.0])),
        (np.array([0.0, 0.0]), np.array([0.0, 0.0])),
    )
    return Fairness(1.25, {"group": groups}, {"first_group": [effect]})


def test_each_group_gets_offers_discounts_and_conversion_at_the_decision_grain() -> None:
    north, south = flagged_south().dimensions["group"]
    assert north.conversion is not None
    assert north.conversion.value == pytest.approx(30 / 150 - 4 / 30)
    assert north.discount_per_decision is not None and north.discount_per_decision.value == 0.0
    assert south.disparity is not None and south.disparity.ratio == pytest.approx(4.0)
    assert south.flagged and not north.flagged


def test_the_per_user_effect_is_the_headlines_maths() -> None:
    (north,) = flagged_south().effects["first_group"]
    assert (north.treated_users, north.control_users) == (3, 2)
    assert north.conversion == proportion_difference(1, 3, 0, 2)
    assert north.net is not None and north.net.value == pytest.approx(5.0)
    few = effect_of("first_group", "x", (np.ones(1), np.ones(1)), (np.ones(5), np.ones(5)))
    assert few.conversion is None and few.net is None  # one treated user: no interval


def test_the_report_names_the_flagged_group_and_the_setting() -> None:
    f = flagged_south()
    (alert,) = fairness_alerts(f)
    assert alert.startswith("ALERT: platform group 'south' is offered on 10.0% of treated")
    assert "4.00x below the most-offered group's rate (PROMO_FAIRNESS_MAX_RATIO 1.25)" in alert
    text = fairness_section(f)
    assert "by platform group" in text
    assert "by k-means segment (id and the name logged with the decision): no decisions" in text
    assert "effect per user by platform group at the first decision" in text
    fig = fairness_chart(f)
    assert fig is not None
    assert {t.name: list(t.y) for t in fig.data} == {
        "offer rate [95% CI]": ["platform group: north"],
        "flagged [95% CI]": ["platform group: south"],
    }


def test_no_flag_is_said_in_words() -> None:
    assert fairness_alerts(Fairness(1.25, {}, {})) == [
        "no group's offer rate is 1.25x or more below its dimension's highest"
    ]

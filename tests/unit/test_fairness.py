"""Fairness: the offer-rate ratio between groups and its alert (streams/fairness.py), the
groups' figures from the view's rows (promo/fairness.py), and how the report shows them."""

from __future__ import annotations

import math
from typing import Any

import pytest

from promo.fairness import Fairness, fairness_of
from promo.report import fairness_alerts, fairness_section
from promo.report_charts import fairness_chart
from streams.evaluation import proportion_difference
from streams.fairness import OfferRate, offer_rate_disparities

MARGIN = 0.3


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
        [OfferRate("top", 400, 1000), OfferRate("group", offers, decisions)], max_ratio=1.25
    )
    assert (top.ratio, top.flagged) == (1.0, False)
    assert (group.ratio, group.flagged, group.clear) == (pytest.approx(ratio), flagged, clear)


def test_the_threshold_is_the_settings() -> None:
    rates = [OfferRate("a", 400, 1000), OfferRate("b", 300, 1000)]
    assert [d.flagged for d in offer_rate_disparities(rates, max_ratio=1.25)] == [False, True]
    assert [d.flagged for d in offer_rate_disparities(rates, max_ratio=1.5)] == [False, False]
    with pytest.raises(ValueError, match="above 1"):
        offer_rate_disparities(rates, max_ratio=1.0)


def test_groups_without_treated_decisions_or_offers_flag_nothing() -> None:
    assert offer_rate_disparities([], 1.25) == []
    assert offer_rate_disparities([OfferRate("a", 0, 0)], 1.25) == []
    (nobody,) = offer_rate_disparities([OfferRate("a", 0, 50)], 1.25)
    assert math.isnan(nobody.ratio) and not nobody.flagged


def _row(users: int, decisions: int, offers: int, converters: int, spend: float) -> dict[str, Any]:
    """A v_fairness row of users who each spent ``spend`` (no margins, no coupons)."""
    buyers_spend = converters * spend
    return {
        "users": users,
        "sum_decisions": decisions,
        "sum_offers": offers,
        "converters": converters,
        "sum_discount": 0.0,
        "sum_discount_sq": 0.0,
        "sum_rate_base": buyers_spend,
        "sum_rate_base_sq": converters * spend * spend,
        "sum_net_fixed": 0.0,
        "sum_net_fixed_sq": 0.0,
        "sum_rate_base_net_fixed": 0.0,
    }


def flagged_south() -> Fairness:
    """Two platform groups; south is offered a quarter of north's rate."""
    groups = fairness_of(
        "group",
        ["north", "south"],
        [
            {"treatment": _row(100, 150, 60, 30, 50.0), "control": _row(20, 30, 0, 4, 50.0)},
            {"treatment": _row(100, 150, 15, 20, 50.0), "control": _row(20, 30, 0, 4, 50.0)},
        ],
        MARGIN,
        1.25,
    )
    return Fairness(1.25, {"group": groups})


def test_each_group_gets_the_headlines_per_user_comparison() -> None:
    north, south = flagged_south().dimensions["group"]
    assert north.conversion == proportion_difference(30, 100, 4, 20)
    assert north.net is not None and north.net.value == pytest.approx(MARGIN * 50 * (0.3 - 0.2))
    assert south.disparity is not None and south.disparity.ratio == pytest.approx(4.0)
    assert south.flagged and not north.flagged


def test_the_report_names_the_flagged_group_and_the_setting() -> None:
    f = flagged_south()
    (alert,) = fairness_alerts(f)
    assert alert.startswith("ALERT: platform group 'south' is offered on 10.0% of treated")
    assert "4.00x below the most-offered group's rate (PROMO_FAIRNESS_MAX_RATIO 1.25)" in alert
    text = fairness_section(f)
    assert "by platform group" in text and "by k-means segment: no users yet" in text
    fig = fairness_chart(f)
    assert fig is not None
    assert {t.name: list(t.y) for t in fig.data} == {
        "offer rate [95% CI]": ["platform group: north"],
        "flagged [95% CI]": ["platform group: south"],
    }


def test_no_flag_is_said_in_words() -> None:
    assert fairness_alerts(Fairness(1.25, {})) == [
        "no group's offer rate is 1.25x or more below its dimension's highest"
    ]

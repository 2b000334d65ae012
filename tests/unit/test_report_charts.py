"""The HTML report's charts, built from figures made by hand (no servers): they draw the text
report's numbers, leave out what the data cannot support, and the page needs nothing online."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from promo.model_quality import CalibrationBin, QualityDay
from promo.off_policy import PolicyEstimates
from promo.report import difference_ci, over_time_table, points_ci
from promo.report_charts import (
    breakdown_chart,
    headline_chart,
    itt_over_time_chart,
    off_policy_chart,
    over_time_chart,
    quality_chart,
    spend_chart,
    suppressions_chart,
)
from promo.report_figures import (
    BREAKDOWNS,
    BY_OFFER,
    DayEffect,
    Evaluation,
    Row,
    SpendDay,
    Suppressed,
    UserFigures,
    compare,
    headline,
)
from promo.report_html import render_html
from streams.evaluation import Estimate, wilson_interval
from streams.off_policy import OffPolicyEstimate, TargetPolicy
from tests.unit.test_fairness import flagged_south

MARGIN = 0.4
NAN = Estimate(math.nan, math.nan, math.nan)


def _users(converted: list[int], revenue: list[float]) -> UserFigures:
    zeros = np.zeros(len(converted))
    # No discounts, no margins sent: the rate applies to all of the revenue.
    return UserFigures(
        np.array(converted, float), np.array(revenue), zeros, np.array(revenue), zeros,
        zeros, zeros, zeros,
    )  # fmt: skip


def _row(decisions: int, conversions: int, revenue: float) -> Row:
    return {
        "decisions": decisions,
        "conversions": conversions,
        "conversion_rate": conversions / decisions,
        "sum_revenue": revenue,
        "sum_revenue_sq": revenue * revenue,
        "sum_discount": 0.0,
        "sum_discount_sq": 0.0,
        "sum_revenue_discount": 0.0,
        "sum_rate_base": revenue,
        "sum_rate_base_sq": revenue * revenue,
        "sum_net_fixed": 0.0,
        "sum_net_fixed_sq": 0.0,
        "sum_rate_base_net_fixed": 0.0,
    }


USERS = {
    "treatment": _users([1, 0, 1, 0], [100.0, 0.0, 50.0, 0.0]),
    "control": _users([1, 0, 0, 0], [80.0, 0.0, 0.0, 0.0]),
}


def test_headline_chart_shows_the_text_reports_cells() -> None:
    h = headline(USERS, MARGIN)
    assert h is not None
    fig = headline_chart(h)
    hover = [text for trace in fig.data for text in (trace.hovertext or ())]
    assert points_ci(h.conversion.raw) in hover
    assert difference_ci(h.net.raw) in hover
    band = next(t for t in fig.data if t.type == "bar" and t.xaxis == "x")
    assert band.x[0] == 2 * h.conversion.mde * 100  # ± MDE in points, around 0
    assert fig.layout.xaxis.title.text == "percentage points"
    assert fig.layout.xaxis2.title.text == "currency units per user"


def test_a_day_without_both_arms_is_left_out_not_drawn_at_zero() -> None:
    days = [
        compare(dt.date(2026, 1, 1), _row(10, 4, 200.0), _row(10, 2, 100.0), MARGIN),
        compare(dt.date(2026, 1, 2), _row(10, 4, 200.0), None, MARGIN),
    ]
    fig = over_time_chart(days)
    assert fig is not None
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [list(t.x) for t in lines] == [["2026-01-01"], ["2026-01-01"]]
    assert lines[0].hovertext[0] == points_ci(days[0].conversion_difference or NAN)
    assert over_time_chart(days[1:]) is None


def _day_effect(day: dt.date, users: dict[str, UserFigures]) -> DayEffect:
    h = headline(users, MARGIN)
    assert h is not None
    return DayEffect(day, h.treatment.n, h.control.n, h.conversion, h.net)


def test_itt_over_time_chart_draws_the_text_tables_cells_in_bands_around_zero() -> None:
    days = [
        _day_effect(dt.date(2026, 1, 1), USERS),
        _day_effect(dt.date(2026, 1, 2), {**USERS, "treatment": _users([1, 0], [30.0, 0.0])}),
    ]
    fig = itt_over_time_chart(days)
    assert fig is not None
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [list(t.x) for t in lines] == [["2026-01-01", "2026-01-02"]] * 2
    assert len(bands) == 2 and list(bands[0].y[:2]) == [
        d.conversion.raw.high * 100 for d in days
    ]  # the band's upper edge, in points
    _, rows = over_time_table(days)
    conversion_cells, net_cells = [[row[i] for row in rows] for i in (3, 4)]
    assert [text.split(";")[0] for text in lines[0].hovertext] == conversion_cells
    assert [text.split(";")[0] for text in lines[1].hovertext] == net_cells
    assert "4 treatment vs 4 control users" in lines[0].hovertext[0]
    assert [s.y0 for s in fig.layout.shapes] == [0, 0]  # a zero line in each panel
    assert fig.layout.yaxis.title.text == "points"
    assert fig.layout.yaxis2.title.text == "per user"
    assert "per user (intention to treat)" in fig.layout.title.text.lower()
    assert itt_over_time_chart([]) is None


def test_breakdown_chart_has_a_row_per_key_with_both_arms() -> None:
    offers = [
        compare("pct10", _row(10, 4, 200.0), _row(10, 2, 100.0), MARGIN),
        compare("none", _row(5, 1, 20.0), _row(5, 1, 30.0), MARGIN),
    ]
    fig = breakdown_chart(BY_OFFER, offers)
    assert fig is not None
    assert sorted(fig.data[0].y) == ["none", "pct10"]
    assert fig.layout.yaxis.title.text == "offer"


def test_spend_suppressions_and_off_policy_charts() -> None:
    spend = [SpendDay(dt.date(2026, 1, 1), 12, 30.0, 3, 7.5)]
    fig = spend_chart(spend, daily_budget=50.0)
    assert fig is not None and fig.layout.shapes[0].y0 == 50.0
    assert spend_chart([], 50.0) is None
    assert suppressions_chart([]) is None
    fig = suppressions_chart([Suppressed("budget", 3, 2, 7.5)])
    assert fig is not None and list(fig.data[0].x) == [3]
    value = OffPolicyEstimate(10, 5, 0, 4.0, Estimate(1, 0, 2), NAN, Estimate(1.5, 1, 2))
    fig = off_policy_chart([PolicyEstimates(TargetPolicy.never(), 8, value, value)])
    assert fig is not None
    assert {t.name for t in fig.data} == {"IPS", "DR"}  # SNIPS is not defined here


def test_page_is_self_contained_and_escapes_producer_text() -> None:
    h = headline(USERS, MARGIN)
    offers = [compare("<b>x</b>", _row(10, 4, 200.0), _row(10, 2, 100.0), MARGIN)]
    evaluation = Evaluation(
        gross_margin=MARGIN,
        daily_budget=None,
        arms={"treatment": {**_row(4, 2, 150.0), "users": 4}},
        users=USERS,
        headline=h,
        breakdowns={spec: offers if spec == BY_OFFER else [] for spec in BREAKDOWNS},
        off_policy=[],
        truth=None,
        spend=[],
        suppressions=[],
        dead_letters=[],
        events=[],
        fairness=flagged_south(),
    )
    page = render_html(evaluation)
    assert "ALERT: platform group &#x27;south&#x27; is offered on 10.0%" in page
    assert page.count("plotly.js v") == 1  # the library, inline once
    assert "<script src=" not in page
    assert "<b>x</b>" not in page.split("<pre>")[1]  # the text report, escaped
    assert "No day has decisions in both arms yet." in page  # said, not silently dropped
    assert "No day yet has at least two users in each arm." in page
    assert page.index("Per user (intention to treat)") < page.index("Per decision (descriptive)")


def test_model_quality_chart_leaves_out_a_day_without_both_outcomes() -> None:
    no_offers = (0, math.nan, wilson_interval(0, 0))
    days = [
        QualityDay(dt.date(2026, 1, 1), 10, 3, 0.3, 0.55, 0.61, 0.7, *no_offers),
        QualityDay(dt.date(2026, 1, 2), 4, 0, 0.2, 0.2, 0.0, math.nan, *no_offers),  # none bought
    ]
    bins = [CalibrationBin(0.2, 0.3, 14, 0.27, 0.21)]
    fig = quality_chart(days, bins)
    assert fig is not None
    traces = {t.name: t for t in fig.data}
    assert list(traces["model"].y) == [0.55, 0.2]
    assert list(traces["AUC"].x) == ["2026-01-01"]  # no AUC without buyers and non-buyers
    assert list(traces["decisions by predicted tenth"].y) == [0.21]
    assert quality_chart([], []) is None

"""The HTML report's charts: pure functions from the report's figures to Plotly figures.

Each chart draws numbers of ``promo.report_figures`` as they are, never re-derived, and its
hover text is the text report's own cell (``promo.report`` formatters), so a point and its
row in ``promo report`` read the same. An estimate the data cannot support (``nan``: too few
users, no conversions in an arm) is left out of the chart rather than drawn at 0; a chart
with nothing to draw is None, and the page says why instead.

>>> from streams.evaluation import Estimate
>>> finite(Estimate(1.0, 0.5, 1.5)), finite(Estimate(1.0, float("nan"), float("nan")))
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from promo.fairness import DIMENSIONS, Fairness
from promo.model_quality import CalibrationBin, QualityDay
from promo.off_policy import PolicyEstimates
from promo.report import detectable, difference_ci, points_ci
from promo.report_figures import (
    Breakdown,
    Comparison,
    DayEffect,
    Headline,
    Measure,
    SpendDay,
    Suppressed,
)
from promo.text_tables import money_ci, pct_ci
from streams.evaluation import Estimate

TREATMENT, CONTROL, NEUTRAL, ALERT = "#1f77b4", "#7f7f7f", "#bbbbbb", "#d62728"
ESTIMATOR_COLOURS = {"IPS": "#9467bd", "SNIPS": "#ff7f0e", "DR": "#2ca02c"}
_HEIGHT_PER_ROW = 38


def finite(e: Estimate | None) -> bool:
    """An estimate with a value and an interval: the only kind a chart draws."""
    return e is not None and all(math.isfinite(x) for x in (e.value, e.low, e.high))


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        height=height,
        margin={"l": 10, "r": 10, "t": 70, "b": 50},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.18},
        hoverlabel={"align": "left"},
    )
    fig.update_yaxes(automargin=True)
    return fig


def _zero_line(fig: go.Figure, row: int, col: int, vertical: bool = True) -> None:
    if vertical:
        fig.add_vline(x=0, line={"color": "black", "width": 1}, row=row, col=col)
    else:
        fig.add_hline(y=0, line={"color": "black", "width": 1}, row=row, col=col)


def _forest(
    labels: Sequence[str],
    estimates: Sequence[Estimate],
    hover: Sequence[str],
    name: str,
    colour: str,
    scale: float = 1.0,
) -> go.Scatter:
    """Points with their 95 % intervals as horizontal error bars, one row per label."""
    return go.Scatter(
        x=[e.value * scale for e in estimates],
        y=list(labels),
        mode="markers",
        name=name,
        marker={"color": colour, "size": 9},
        error_x={
            "type": "data",
            "symmetric": False,
            "array": [(e.high - e.value) * scale for e in estimates],
            "arrayminus": [(e.value - e.low) * scale for e in estimates],
            "thickness": 2,
        },
        hovertext=list(hover),
        hoverinfo="text+name",
    )


# --- the headline ------------------------------------------------------------------------------


def headline_chart(h: Headline) -> go.Figure:
    """Per-user effect, treatment - control: raw and CUPED with 95 % intervals, and the grey
    band of what this sample could detect (± minimum detectable effect around 0)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.4, 0.6],
        horizontal_spacing=0.18,
        subplot_titles=(
            "conversion rate, T - C (percentage points)",
            "money per user, T - C (currency units)",
        ),
    )
    for col, measures in ((1, (h.conversion,)), (2, (h.revenue, h.net))):
        points = measures[0].points
        scale = 100.0 if points else 1.0
        show = points_ci if points else difference_ci
        labels = [m.name for m in measures]
        fig.add_trace(
            go.Bar(
                x=[2 * m.mde * scale for m in measures],
                base=[-m.mde * scale for m in measures],
                y=labels,
                orientation="h",
                name="detectable: ± minimum detectable effect (raw)",
                marker={"color": NEUTRAL, "opacity": 0.5},
                hovertext=[detectable(m.mde, points) for m in measures],
                hoverinfo="text+name",
                showlegend=col == 1,
                width=0.5,
            ),
            row=1,
            col=col,
        )
        raw = [(m.name, m.raw) for m in measures if finite(m.raw)]
        if raw:
            fig.add_trace(
                _forest(
                    [n for n, _ in raw],
                    [e for _, e in raw],
                    [show(e) for _, e in raw],
                    "raw difference [95% CI]",
                    CONTROL,
                    scale,
                ).update(showlegend=col == 1),
                row=1,
                col=col,
            )
        cuped = [(m.name, m.cuped.difference) for m in measures if m.adjusted]
        cuped = [(n, e) for n, e in cuped if finite(e)]
        if cuped:
            fig.add_trace(
                _forest(
                    [n for n, _ in cuped],
                    [e for _, e in cuped],
                    [show(e) for _, e in cuped],
                    "CUPED-adjusted difference [95% CI] (the verdict's, for money)",
                    TREATMENT,
                    scale,
                ).update(marker_symbol="diamond"),
                row=1,
                col=col,
            )
        _zero_line(fig, 1, col)
    fig.update_xaxes(title_text="percentage points", row=1, col=1)
    fig.update_xaxes(title_text="currency units per user", row=1, col=2)
    fig.update_layout(barmode="overlay")
    return _layout(fig, "Effect of the promotion per user (treatment - control), 95% CI", 360)


def arms_chart(h: Headline, margin: float) -> go.Figure:
    """Each arm's conversion and net profit per user with their 95 % intervals."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.15,
        subplot_titles=("conversion rate (% of users)", "net profit per user (currency units)"),
    )
    arms = (("treatment", h.treatment, TREATMENT), ("control", h.control, CONTROL))
    for col, show, scale in ((1, pct_ci, 100.0), (2, money_ci, 1.0)):
        for arm, users, colour in arms:
            e = users.conversion() if col == 1 else users.net_per_user(margin)
            fig.add_trace(
                go.Bar(
                    x=[arm],
                    y=[e.value * scale],
                    name=arm,
                    marker={"color": colour},
                    error_y=_bar_error(e, scale),
                    hovertext=[f"{arm}: {show(e)} ({users.n:,} users)"],
                    hoverinfo="text",
                    showlegend=False,
                ),
                row=1,
                col=col,
            )
    fig.update_yaxes(title_text="% of users who bought", row=1, col=1)
    fig.update_yaxes(title_text="currency units per user", row=1, col=2)
    return _layout(fig, "Treatment vs randomised control, per user, 95% CI", 380)


def _bar_error(e: Estimate, scale: float) -> dict[str, object]:
    if not finite(e):
        return {"visible": False}
    return {
        "type": "data",
        "symmetric": False,
        "array": [(e.high - e.value) * scale],
        "arrayminus": [(e.value - e.low) * scale],
    }


# --- per decision, descriptive -----------------------------------------------------------------

_DIFFERENCES: tuple[tuple[str, Callable[[Comparison], Estimate | None], float, str], ...] = (
    ("conversion, T - C (percentage points)", lambda x: x.conversion_difference, 100.0, "points"),
    (
        "net profit per decision, T - C (currency units)",
        lambda x: x.net_difference,
        1.0,
        "money",
    ),
)


def _band(
    fig: go.Figure,
    row: int,
    x: list[str],
    estimates: Sequence[Estimate],
    hover: Sequence[str],
    scale: float,
) -> None:
    """A line of estimates over days in its shaded 95 % band, with a zero line."""
    fig.add_trace(
        go.Scatter(
            x=x + x[::-1],
            y=[e.high * scale for e in estimates] + [e.low * scale for e in estimates][::-1],
            fill="toself",
            fillcolor="rgba(31,119,180,0.2)",
            mode="lines",
            line={"width": 0},
            name="95% CI",
            hoverinfo="skip",
            showlegend=row == 1,
        ),
        row=row,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[e.value * scale for e in estimates],
            mode="lines+markers",
            name="treatment - control",
            line={"color": TREATMENT},
            hovertext=list(hover),
            hoverinfo="x+text",
            showlegend=row == 1,
        ),
        row=row,
        col=1,
    )
    _zero_line(fig, row, 1, vertical=False)


_ITT_MEASURES: tuple[
    tuple[Callable[[DayEffect], Measure], Callable[[Estimate], str], float], ...
] = (
    (lambda d: d.conversion, points_ci, 100.0),
    (lambda d: d.net, difference_ci, 1.0),
)


def itt_over_time_chart(days: Sequence[DayEffect]) -> go.Figure | None:
    """Per user (intention to treat), cumulative: the headline's effect on everything known by
    the end of each UTC day, conversion and net profit (the verdict's estimate: CUPED where
    the covariate varies), with 95 % bands."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            "conversion rate, T - C (percentage points)",
            "net profit per user, T - C (currency units)",
        ),
    )
    drawn = False
    for row, (pick, show, scale) in enumerate(_ITT_MEASURES, start=1):
        shown = [(d, pick(d)) for d in days if finite(pick(d).primary[0])]
        if not shown:
            continue
        drawn = True
        estimates = [m.primary[0] for _, m in shown]
        hover = [
            f"{show(e)}{' (CUPED)' if m.adjusted else ''}; "
            f"{d.treatment_users:,} treatment vs {d.control_users:,} control users"
            for (d, m), e in zip(shown, estimates, strict=True)
        ]
        _band(fig, row, [str(d.day) for d, _ in shown], estimates, hover, scale)
    if not drawn:
        return None
    fig.update_xaxes(type="category")  # on both shared axes, or Plotly drops the sharing
    fig.update_xaxes(title_text="end of day (UTC): users assigned by then", row=2, col=1)
    fig.update_yaxes(title_text="points", row=1, col=1)
    fig.update_yaxes(title_text="per user", row=2, col=1)
    title = "Per user (intention to treat), cumulative: effect on everything known by each day"
    return _layout(fig, title, 560)


def over_time_chart(days: Sequence[Comparison]) -> go.Figure | None:
    """Per decision, by UTC day of the decision (descriptive): the incremental conversion and
    net profit per decision with 95 % bands."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=[title for title, *_ in _DIFFERENCES],
    )
    drawn = False
    for row, (_, pick, scale, kind) in enumerate(_DIFFERENCES, start=1):
        shown = [(x.key, e) for x in days if finite(e := pick(x)) and e is not None]
        if not shown:
            continue
        drawn = True
        show = points_ci if kind == "points" else difference_ci
        estimates = [e for _, e in shown]
        _band(fig, row, [str(d) for d, _ in shown], estimates, [show(e) for e in estimates], scale)
        fig.update_yaxes(title_text="points" if kind == "points" else "per decision", row=row)
    if not drawn:
        return None
    fig.update_xaxes(type="category")  # on both shared axes, or Plotly drops the sharing
    fig.update_xaxes(title_text="day of the decision (UTC)", row=2, col=1)
    title = "Per decision (descriptive): conversion and net profit by day of the decision"
    return _layout(fig, title, 560)


def breakdown_chart(spec: Breakdown, comparisons: Sequence[Comparison]) -> go.Figure | None:
    """Treatment - control per key of a breakdown (offer, segment, policy version)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=[title for title, *_ in _DIFFERENCES],
    )
    drawn = False
    for col, (_, pick, scale, kind) in enumerate(_DIFFERENCES, start=1):
        shown = [(str(x.key), e) for x in comparisons if finite(e := pick(x)) and e is not None]
        if not shown:
            continue
        drawn = True
        show = points_ci if kind == "points" else difference_ci
        fig.add_trace(
            _forest(
                [k for k, _ in shown],
                [e for _, e in shown],
                [show(e) for _, e in shown],
                "treatment - control [95% CI]",
                TREATMENT,
                scale,
            ).update(showlegend=col == 1),
            row=1,
            col=col,
        )
        _zero_line(fig, 1, col)
        fig.update_xaxes(
            title_text="percentage points" if kind == "points" else "currency units per decision",
            row=1,
            col=col,
        )
    if not drawn:
        return None
    fig.update_yaxes(title_text=spec.label, type="category", row=1, col=1)
    height = 170 + _HEIGHT_PER_ROW * len(comparisons)
    return _layout(fig, f"By {spec.label}: treatment - control (descriptive)", height)


def fairness_chart(f: Fairness) -> go.Figure | None:
    """Each group's offer rate (treated decisions) with its 95 % interval, one row per group
    of every dimension; groups the report flags are drawn in red."""
    shown = [
        (f"{label}: {g.group}", g)
        for dimension, label in DIMENSIONS
        for g in f.dimensions.get(dimension, [])
        if g.disparity is not None and finite(g.disparity.rate)
    ]
    if not shown:
        return None
    fig = go.Figure()
    for flagged, colour, name in ((False, TREATMENT, "offer rate"), (True, ALERT, "flagged")):
        rows = [(label, g) for label, g in shown if g.flagged == flagged]
        if not rows:
            continue
        rates = [g.disparity.rate for _, g in rows if g.disparity is not None]
        fig.add_trace(
            _forest(
                [label for label, _ in rows],
                rates,
                [pct_ci(rate) for rate in rates],
                f"{name} [95% CI]",
                colour,
                scale=100.0,
            )
        )
    fig.update_xaxes(title_text="offers per treated decision, %", rangemode="tozero")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=[k for k, _ in shown])
    height = 170 + _HEIGHT_PER_ROW * len(shown)
    return _layout(fig, "Offer rate per group (treated decisions)", height)


# --- budget, suppressions, off-policy ----------------------------------------------------------


def spend_chart(spend: Sequence[SpendDay], daily_budget: float | None) -> go.Figure | None:
    """Per UTC day: realised discount, the expected cost the budget withheld, and the budget."""
    if not spend:
        return None
    days = [str(d.day) for d in spend]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=days,
            y=[d.realised_discount for d in spend],
            name="realised discount (coupons on purchases that day)",
            marker={"color": TREATMENT},
            hovertext=[f"{d.offers_sent:,} offers sent" for d in spend],
        )
    )
    fig.add_trace(
        go.Bar(
            x=days,
            y=[d.withheld_cost for d in spend],
            name="expected cost of offers withheld by budget or pacing",
            marker={"color": NEUTRAL},
            hovertext=[f"{d.withheld:,} offers withheld" for d in spend],
        )
    )
    if daily_budget:
        fig.add_hline(
            y=daily_budget,
            line={"color": "firebrick", "dash": "dash"},
            annotation_text=f"daily budget {daily_budget:,.2f} (of expected discount)",
            annotation_position="top left",
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="day (UTC)", type="category")
    fig.update_yaxes(title_text="currency units per day")
    return _layout(fig, "Budget burn per day", 400)


def suppressions_chart(suppressed: Sequence[Suppressed]) -> go.Figure | None:
    if not suppressed:
        return None
    fig = go.Figure(
        go.Bar(
            x=[s.decision_points for s in suppressed],
            y=[s.reason for s in suppressed],
            orientation="h",
            marker={"color": CONTROL},
            hovertext=[
                f"{s.users:,} users; expected cost of withheld offers {s.expected_cost:,.2f}"
                for s in suppressed
            ],
            hoverinfo="x+text",
        )
    )
    fig.update_xaxes(title_text="suppressed decision points")
    fig.update_yaxes(title_text="reason", autorange="reversed", type="category")
    return _layout(fig, "Suppressed decision points by reason", 140 + 34 * len(suppressed))


def off_policy_chart(estimates: Sequence[PolicyEstimates]) -> go.Figure | None:
    """Each target policy's IPS, SNIPS and DR estimates per decision, with 95 % intervals."""
    if not estimates:
        return None
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=(
            "net margin per decision (currency units)",
            "conversion per decision (% of decisions)",
        ),
    )
    labels = [e.target.name for e in estimates]
    for col, metric, scale, show in (
        (1, "profit", 1.0, money_ci),
        (2, "conversion", 100.0, pct_ci),
    ):
        for estimator, colour in ESTIMATOR_COLOURS.items():
            values = [getattr(getattr(e, metric), estimator.lower()) for e in estimates]
            shown = [(label, v) for label, v in zip(labels, values, strict=True) if finite(v)]
            if not shown:
                continue
            fig.add_trace(
                _forest(
                    [label for label, _ in shown],
                    [v for _, v in shown],
                    [show(v) for _, v in shown],
                    estimator,
                    colour,
                    scale,
                ).update(showlegend=col == 1, legendgroup=estimator),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="currency units per decision", row=1, col=1)
    fig.update_xaxes(title_text="% of decisions converting", row=1, col=2)
    fig.update_yaxes(title_text="target policy", type="category", autorange="reversed", col=1)
    height = 170 + 3 * _HEIGHT_PER_ROW * len(estimates) // 2
    return _layout(fig, "What other policies would have earned (off-policy, descriptive)", height)


def quality_chart(days: Sequence[QualityDay], bins: Sequence[CalibrationBin]) -> go.Figure | None:
    """The purchase model's predictions against outcomes: log-loss and AUC by day of the
    decision, and calibration (predicted against observed) over all days."""
    if not days:
        return None
    fig = make_subplots(
        rows=1,
        cols=3,
        horizontal_spacing=0.08,
        subplot_titles=[
            "Log-loss by day (lower is better)",
            "AUC by day (0.5: no better than chance)",
            "Calibration: observed vs predicted",
        ],
    )
    x = [str(d.day) for d in days]
    fig.add_trace(
        go.Scatter(x=x, y=[d.log_loss for d in days], mode="lines+markers", name="model",
                   line={"color": TREATMENT},
                   hovertext=[f"{d.decisions:,} decisions, {d.buyers:,} bought" for d in days],
                   hoverinfo="x+y+text"),
        row=1, col=1,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=x, y=[d.reference_log_loss for d in days], mode="lines", name="no skill",
                   line={"color": CONTROL, "dash": "dash"}),
        row=1, col=1,
    )  # fmt: skip
    scored = [(str(d.day), d.auc) for d in days if math.isfinite(d.auc)]
    fig.add_trace(
        go.Scatter(x=[day for day, _ in scored], y=[auc for _, auc in scored],
                   mode="lines+markers", name="AUC", line={"color": TREATMENT},
                   showlegend=False),
        row=1, col=2,
    )  # fmt: skip
    fig.add_hline(y=0.5, line={"color": "black", "width": 1}, row=1, col=2)
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                   line={"color": NEUTRAL, "dash": "dot"}, hoverinfo="skip"),
        row=1, col=3,
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(x=[b.mean_predicted for b in bins], y=[b.observed for b in bins],
                   mode="markers+lines", name="decisions by predicted tenth",
                   marker={"color": TREATMENT,
                           "size": [6 + 14 * math.sqrt(b.decisions / max(c.decisions for c in bins))
                                    for b in bins]},
                   hovertext=[f"predicted {b.low:.0%}-{b.high:.0%}: {b.decisions:,} decisions"
                              for b in bins],
                   hoverinfo="x+y+text"),
        row=1, col=3,
    )  # fmt: skip
    fig.update_xaxes(type="category", title_text="day of the decision (UTC)", row=1, col=1)
    fig.update_xaxes(type="category", title_text="day of the decision (UTC)", row=1, col=2)
    fig.update_yaxes(title_text="mean log-loss per decision", row=1, col=1)
    fig.update_yaxes(title_text="AUC", range=[0, 1], row=1, col=2)
    fig.update_xaxes(title_text="predicted P(buy)", tickformat=".0%", range=[0, 1], row=1, col=3)
    fig.update_yaxes(title_text="share that bought", tickformat=".0%", range=[0, 1], row=1, col=3)
    fig = _layout(fig, "Purchase model: its predictions against what followed", 520)
    # Below the dates' axis titles, not over them.
    fig.update_layout(legend={"y": -0.4}, margin={"b": 120})
    return fig

"""``promo report --html PATH``: the evaluation as one self-contained HTML page for analysts.

The page carries Plotly's JavaScript inline, so it opens offline and can be mailed as one
file. It draws the figures of one ``Evaluation`` (``promo.report_figures``) and ends with the
text report of that same evaluation, so every number on the page is one ``promo report``
prints. The verdicts are the text report's own sentences.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path

import plotly.graph_objects as go

from promo.fairness import DIMENSIONS, EFFECT_DIMENSIONS
from promo.report import (
    FAIRNESS_TITLE,
    OVER_TIME_CAVEATS,
    SUPPRESSION_REASONS,
    budget_note,
    effect_table,
    fairness_alerts,
    fairness_notes,
    fairness_table,
    format_report,
    gating_saved,
    group_effect_table,
    over_time_table,
    verdicts,
)
from promo.report_charts import (
    arms_chart,
    breakdown_chart,
    fairness_chart,
    headline_chart,
    itt_over_time_chart,
    off_policy_chart,
    over_time_chart,
    quality_chart,
    spend_chart,
    suppressions_chart,
)
from promo.report_figures import (
    BY_DAY,
    BY_OFFER,
    BY_POLICY_VERSION,
    BY_RULE_SEGMENT,
    BY_SEGMENT,
    BY_TARGET,
    PRE_PERIOD_DAYS,
    SEGMENT_SHOWN_AS,
    Evaluation,
)

_DESCRIPTIVE = (
    "Descriptive: the intervals treat a user's decisions as independent, so they are "
    "optimistic; conclusions come from the per-user headline."
)

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
p.why { color: #555; } ul.verdict li { margin: 0.3em 0; }
table { border-collapse: collapse; } td, th { padding: 0.2em 0.8em; text-align: right; }
td:first-child, th:first-child { text-align: left; } tr:nth-child(even) { background: #f6f6f6; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


class _Page:
    """Sections in order; Plotly's library goes inline with the first chart only."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def subheading(self, text: str) -> None:
        self.parts.append(f"<h3>{html.escape(text)}</h3>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="why">{html.escape(text)}</p>')

    def verdicts(self, lines: Iterable[str]) -> None:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
        self.parts.append(f'<ul class="verdict">{items}</ul>')

    def chart(self, fig: go.Figure | None, missing: str) -> None:
        if fig is None:
            self.note(missing)
            return
        self.parts.append(
            fig.to_html(
                full_html=False,
                include_plotlyjs=self.charts == 0,
                config={"displaylogo": False, "responsive": True},
                div_id=f"chart-{self.charts + 1}",
            )
        )
        self.charts += 1

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")


def render_html(e: Evaluation) -> str:
    """The whole page, as one string."""
    page = _Page()
    if not e.arms:
        page.note("No decisions yet: nothing to compare.")
    else:
        _headline(page, e)
        _over_time(page, e)
        _per_decision(page, e)
        _fairness(page, e)
        _budget_and_suppressions(page, e)
        _off_policy(page, e)
        _model_quality(page, e)
    page.heading("The text report (the same figures, as promo report prints them)")
    page.parts.append(f"<pre>{html.escape(format_report(e))}</pre>")
    title = "promo-stream report"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p>Gross margin {e.gross_margin:.0%} of revenue before discounts; "
        "all intervals are 95% confidence intervals.</p>"
        + "\n".join(page.parts)
        + "</body></html>\n"
    )


def write_html(e: Evaluation, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(e), encoding="utf-8")
    return path


def _headline(page: _Page, e: Evaluation) -> None:
    page.heading("Headline: treatment vs randomised control, per user (intention to treat)")
    h = e.headline
    if h is None:
        page.note("Needs at least two users in each arm: no interval can be computed yet.")
        return
    page.verdicts(verdicts(h))
    page.chart(arms_chart(h, e.gross_margin), "")
    page.chart(headline_chart(h), "")
    page.note(
        "Every purchase from a user's first decision on counts once. Grey band: the minimum "
        "detectable effect, the smallest true difference this sample detects 80% of the time; "
        "an interval that crosses 0 cannot tell treatment from control. CUPED adjusts by each "
        f"user's net profit in the {PRE_PERIOD_DAYS} days before their first decision."
    )
    page.table(*effect_table(h))


def _over_time(page: _Page, e: Evaluation) -> None:
    page.heading("Over time")
    page.subheading("Per user (intention to treat): cumulative, to the end of each UTC day")
    page.chart(itt_over_time_chart(e.over_time), "No day yet has at least two users in each arm.")
    for caveat in OVER_TIME_CAVEATS:
        page.note(caveat[0].upper() + caveat[1:] + ".")
    if e.over_time:
        page.table(*over_time_table(e.over_time))
    page.subheading("Per decision (descriptive): by UTC day of the decision")
    page.chart(over_time_chart(e.breakdowns[BY_DAY]), "No day has decisions in both arms yet.")
    page.note(
        "A day counts the decisions taken that day and what followed each of them. " + _DESCRIPTIVE
    )


def _per_decision(page: _Page, e: Evaluation) -> None:
    for spec, why in (
        (BY_OFFER, "Control: the offer the policy would have sent."),
        (BY_TARGET, "Category offers only; control: as by offer."),
        (BY_SEGMENT, f"Each segment by its {SEGMENT_SHOWN_AS}."),
        (BY_RULE_SEGMENT, ""),
        (BY_POLICY_VERSION, ""),
    ):
        if spec is BY_TARGET and not e.breakdowns[spec]:
            continue  # a shop without category offers
        page.heading(f"By {spec.label}")
        page.chart(
            breakdown_chart(spec, e.breakdowns[spec]),
            f"No {spec.label} has decisions in both arms yet.",
        )
        page.note(f"{why} {_DESCRIPTIVE}".strip())


def _fairness(page: _Page, e: Evaluation) -> None:
    f = e.fairness
    page.heading(FAIRNESS_TITLE)
    if f is None:
        page.note("No decisions yet.")
        return
    page.verdicts(fairness_alerts(f))
    page.chart(fairness_chart(f), "No group has treated decisions yet.")
    for dimension, label in DIMENSIONS:
        groups = f.dimensions.get(dimension, [])
        if groups:
            page.subheading(f"By {label}")
            page.table(*fairness_table(groups))
    for dimension, label in EFFECT_DIMENSIONS:
        effects = f.effects.get(dimension, [])
        if effects:
            page.subheading(f"Effect per user by {label}")
            page.table(*group_effect_table(effects))
    for note in fairness_notes(f):
        page.note(note[0].upper() + note[1:] + ".")


def _budget_and_suppressions(page: _Page, e: Evaluation) -> None:
    page.heading("Budget burn")
    page.chart(spend_chart(e.spend, e.daily_budget), "No offers or discounts yet.")
    page.note(
        f"{budget_note(e.daily_budget)}. The budget and its pacing hold back offers by their "
        "expected cost at decision time; the realised discount is what coupons took off "
        "purchases that day."
    )
    page.heading("Suppressions")
    page.chart(suppressions_chart(e.suppressions), "No decision point was suppressed.")
    page.note(f"{SUPPRESSION_REASONS[0].upper()}{SUPPRESSION_REASONS[1:]}.")
    page.note(f"{gating_saved(e.suppressions)}.")


def _off_policy(page: _Page, e: Evaluation) -> None:
    page.heading("Serving policy vs alternatives, from the decision logs (off-policy)")
    page.chart(off_policy_chart(e.off_policy), "No decisions to estimate from yet.")
    page.note(
        "IPS, SNIPS and DR estimates of each target's mean reward per logged decision point "
        "(treated and control). 'serving choice' is the serving policy's own pick. Decisions "
        "are taken as independent, so the intervals are optimistic; many unsupported "
        "decisions bias IPS and SNIPS (see the text report's table below)."
    )


def _model_quality(page: _Page, e: Evaluation) -> None:
    page.heading("Model quality over time")
    page.chart(
        quality_chart(e.quality, e.calibration),
        "No decision with a logged prediction has its window closed yet.",
    )
    page.note(
        "Each decision's predicted P(buy | the action taken), made before its outcome was "
        "known, against whether the user bought within its window (a decision counts once its "
        "window has closed by the latest decision's time, so buyers and non-buyers are "
        "counted alike). 'No skill': the log-loss of predicting each day's buying rate for "
        "everyone. Points on the diagonal are well calibrated; marker size shows how many "
        "decisions a point holds."
    )

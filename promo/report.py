"""The evaluation report as text: fixed-width tables, one section per question.

The figures, and what each one means, come from ``promo.report_figures``; this module only
formats them, and says in words what the data can and cannot support. Its formatters of
estimates are shared with the HTML report (``promo.report_html``) so both show the same digits.
"""

from __future__ import annotations

import math
import textwrap

from clickhouse_driver import Client

from promo.fairness import DIMENSIONS, EFFECT_DIMENSIONS, Fairness, GroupEffect, GroupOffers
from promo.model_quality import QualityDay
from promo.off_policy import format_off_policy
from promo.report_figures import (
    ARMS,
    BREAKDOWNS,
    BY_DAY,
    BY_OFFER,
    BY_POLICY_VERSION,
    BY_RULE_SEGMENT,
    BY_SEGMENT,
    BY_TARGET,
    PRE_PERIOD_DAYS,
    SEGMENT_SHOWN_AS,
    Breakdown,
    Comparison,
    DayEffect,
    Evaluation,
    GroundTruth,
    Headline,
    Measure,
    Row,
    SpendDay,
    Suppressed,
    UserFigures,
    decision_discount,
    decision_net,
    decision_revenue,
    read_evaluation,
)
from promo.text_tables import money, money_ci, pct, pct_ci, table
from schemas.suppressions import INELIGIBLE, WITHHELD
from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec
from streams.evaluation import (
    CupedEstimate,
    Estimate,
    mean_interval,
    minimum_detectable_effect,
    wilson_interval,
)

_WIDTH = 100  # of wrapped notes; tables are as wide as their cells
_DESCRIPTIVE = (
    "descriptive: intervals treat a user's decisions as independent, so they are optimistic"
)
_DESCRIPTIVE_WHY = (
    f"{_DESCRIPTIVE} (one user's decisions are correlated, and treated users make more of "
    "them); conclusions come from the per-user headline"
)


def build_report(
    client: Client,
    *,
    gross_margin: float,
    catalogue: tuple[OfferSpec, ...] = DEFAULT_CATALOGUE,
    daily_budget: float | None = None,
) -> str:
    """The whole report as text: fixed-width tables, one section per question."""
    evaluation = read_evaluation(
        client, gross_margin=gross_margin, catalogue=catalogue, daily_budget=daily_budget
    )
    return format_report(evaluation)


def format_report(e: Evaluation) -> str:
    margin = e.gross_margin
    sections = [f"promo-stream report (gross margin {margin:.0%} of revenue before discounts)"]
    if not e.arms:
        sections.append("no decisions yet")
    else:
        sections += _headline_sections(e.users, e.headline, margin)
        sections.append(_over_time_section(e.over_time))
        sections.append(_arms_section(e.arms, margin))
        sections += [
            _breakdown(spec, e.breakdowns[spec], _BREAKDOWN_TITLES[spec])
            for spec in BREAKDOWNS
            if spec is not BY_TARGET or e.breakdowns[spec]  # only a shop with category offers
        ]
        if e.fairness is not None:
            sections.append(fairness_section(e.fairness))
        sections.append(format_off_policy(e.off_policy))
        if e.truth:
            sections.append(_ground_truth_section(e.truth))
        sections += [
            _spend_section(e.spend, e.daily_budget),
            _suppressions_section(e.suppressions),
            gating_saved(e.suppressions),
        ]
        sections.append(_quality_section(e.quality))
    sections += [_dead_letters_section(e.dead_letters), _events_section(e.events)]
    return "\n\n".join(sections) + "\n"


_BREAKDOWN_TITLES = {
    BY_DAY: "By day of the decision (UTC), descriptive",
    BY_OFFER: "By offer, descriptive (control: the offer the policy would have sent)",
    BY_TARGET: "By category offer and its category, descriptive (control: as by offer)",
    BY_SEGMENT: f"By k-means segment ({SEGMENT_SHOWN_AS}), descriptive",
    BY_RULE_SEGMENT: "By rule segment (at each decision), descriptive",
    BY_POLICY_VERSION: "By policy version, descriptive",
}


# --- the headline: per user, intention to treat ------------------------------------------------


def _headline_sections(
    users: dict[str, UserFigures], h: Headline | None, margin: float
) -> list[str]:
    sections = [_users_section(users, margin)]
    title = "Effect of the promotion per user (treatment - control)"
    if h is None:
        return [*sections, f"{title}\n  needs at least two users in each arm"]
    header, rows = effect_table(h)
    t, c = h.treatment, h.control
    notes = [
        "net profit = margin * (revenue + discount) - discount; ROI = incremental net profit / "
        "incremental discount (delta method), not estimable while the incremental discount's "
        "interval includes 0",
        "detectable = minimum detectable effect: the smallest true difference this sample "
        "detects 80% of the time at 95% confidence, (z_0.975 + z_0.80) * standard error",
        f"CUPED covariate: each user's net profit in the {PRE_PERIOD_DAYS} days before their "
        f"first decision ({h.pre_buyers:,} of {t.n + c.n:,} users bought then); "
        + cuped_outcome(h.net.cuped),
    ]
    return [
        *sections,
        "\n".join([table(title, header, rows), *(_wrap(line, "  ") for line in notes)]),
        "\n".join(
            [
                "What this sample can support (95% confidence, 80% power)",
                *(_wrap(line, "  - ") for line in verdicts(h)),
            ]
        ),
    ]


def effect_table(h: Headline) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the per-user effect table."""
    rows = [
        _measure_row("conversion rate (points)", h.conversion),
        ["relative conversion uplift", signed_pct_ci(h.uplift), "", "", ""],
        _measure_row("revenue per user", h.revenue),
        ["discount per user", difference_ci(h.discount), "", "", ""],
        _measure_row("net profit per user", h.net),
        ["ROI of the promotion", roi_ci(h.roi), "", "", ""],
    ]
    header = ["measure", "T - C [95% CI]", "detectable", "CUPED T - C [95% CI]", "detectable"]
    return header, rows


def verdicts(h: Headline) -> list[str]:
    """What the sample can support, in words: conversion, net profit, ROI."""
    n_t, n_c = h.treatment.n, h.control.n
    return [_verdict(h.conversion, n_t, n_c), _verdict(h.net, n_t, n_c), _roi_verdict(h.roi)]


def _users_section(users: dict[str, UserFigures], margin: float) -> str:
    rows = []
    for arm in ARMS:
        u = users.get(arm)
        if u is None:
            rows.append([arm, "0", "", "", "", "", ""])
            continue
        rows.append(
            [
                arm,
                f"{u.n:,}",
                f"{u.buyers:,}",
                pct_ci(u.conversion()),
                money_ci(u.revenue_per_user()),
                money(float(u.discount.mean())),
                money_ci(u.net_per_user(margin)),
            ]
        )
    header = [
        "arm",
        "users",
        "buyers",
        "conversion [CI]",
        "revenue/user [CI]",
        "discount/user",
        "net profit/user [CI]",
    ]
    title = "Headline: treatment vs randomised control, per user (intention to treat)"
    note = (
        "every purchase from a user's first decision on counts once; [..] = 95% confidence interval"
    )
    return table(title, header, rows) + "\n" + _wrap(note, "  ")


def _measure_row(label: str, m: Measure) -> list[str]:
    show = points_ci if m.points else difference_ci
    row = [label, show(m.raw), detectable(m.mde, m.points)]
    if m.cuped.theta == 0:  # the covariate does not vary: nothing to adjust with
        return [*row, "same as raw", ""]
    cuped_mde = minimum_detectable_effect(m.cuped.standard_error)
    return [*row, show(m.cuped.difference), detectable(cuped_mde, m.points)]


def _verdict(m: Measure, n_t: int, n_c: int) -> str:
    estimate, mde = m.primary
    which = " (CUPED-adjusted)" if m.adjusted else ""
    unit = " points" if m.points else " per user"
    ci = points_ci(estimate) if m.points else difference_ci(estimate)
    if estimate.excludes_zero:
        direction = "higher" if estimate.value > 0 else "lower"
        return (
            f"{m.name}: treatment is {direction} than control{which}: {ci}{unit}; "
            "the 95% interval excludes 0"
        )
    verdict = (
        f"{m.name}: no effect detectable at this sample size ({n_t:,} treatment vs {n_c:,} "
        f"control users): {ci}{unit}{which} includes 0"
    )
    if not mde > 0:
        return f"{verdict}; it does not vary between users in either arm"
    return (
        f"{verdict}; a true effect would need to be {detectable(mde, m.points)}{unit} or more "
        "to be detected 80% of the time"
    )


def _roi_verdict(roi: Estimate | None) -> str:
    if roi is None:
        return (
            "ROI: not estimable: the extra discount given to treatment users is not "
            "distinguishable from 0 at this sample size"
        )
    if not roi.excludes_zero:
        return (
            f"ROI {roi_ci(roi)} includes 0 (break-even): whether the discounts pay for "
            "themselves is not detectable at this sample size"
        )
    verdict = "pay for themselves" if roi.value > 0 else "cost more than they bring"
    return f"ROI {roi_ci(roi)}: the discounts {verdict} (the 95% interval excludes break-even)"


OVER_TIME_TITLE = (
    "Effect per user over time (intention to treat, treatment - control): cumulative, on "
    "everything known by the end of each UTC day"
)
#: What a cumulative curve looked at every day can and cannot support; the HTML page says it too.
OVER_TIME_CAVEATS = (
    "day d: the users whose first decision fell on or before d, with their purchases and "
    "coupons from that decision to the end of d, compared as the headline compares them (the "
    "same intervals: Newcombe for conversion, the wider of Welch and pooled for money, CUPED "
    "where the covariate varies); the last row is the headline",
    "each row is another look at the same accumulating experiment, and its interval is for "
    "one look, not a sequential test: stopping at the first row that excludes 0 finds an "
    "effect that is not there more often than 1 time in 20 (with no true effect, about 1 in 9 "
    "after 3 daily looks and 1 in 5 after 14, for equally informative looks at a normal "
    "statistic). Judge on the last row, or on a day fixed in advance",
    "the measure itself changes along the curve: early rows hold fewer users, each with hours "
    "or days of follow-up, later rows more users and longer follow-up, so a drifting curve "
    "may be follow-up growing rather than the effect changing",
)


def over_time_table(days: list[DayEffect]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the per-user effect by day (shared with the HTML page)."""
    rows = []
    for d in days:
        net, net_mde = d.net.primary
        rows.append(
            [
                str(d.day),
                f"{d.treatment_users:,}",
                f"{d.control_users:,}",
                points_ci(d.conversion.primary[0]),
                difference_ci(net),
                "CUPED" if d.net.adjusted else "raw",
                detectable(net_mde, points=False),
            ]
        )
    header = [
        "day (UTC)",
        "users T",
        "users C",
        "conv. T-C (points) [CI]",
        "net profit/user T-C [CI]",
        "net: estimate",
        "net detectable",
    ]
    return header, rows


def _over_time_section(days: list[DayEffect]) -> str:
    if not days:
        return f"{OVER_TIME_TITLE}\n  no day yet with at least two users in each arm"
    notes = [*OVER_TIME_CAVEATS, "days before each arm has two users are left out"]
    return "\n".join(
        [table(OVER_TIME_TITLE, *over_time_table(days)), *(_wrap(n, "  ") for n in notes)]
    )


# --- descriptive, per decision -----------------------------------------------------------------


def _arms_section(arms: dict[str, Row], margin: float) -> str:
    rows = []
    for arm in ARMS:
        r = arms.get(arm)
        if r is None:
            rows.append([arm, "0", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                arm,
                f"{r['decisions']:,}",
                f"{r['users']:,}",
                f"{r['conversions']:,}",
                pct_ci(wilson_interval(r["conversions"], r["decisions"])),
                money_ci(mean_interval(decision_revenue(r))),
                money(decision_discount(r).mean),
                money_ci(mean_interval(decision_net(r, margin))),
            ]
        )
    header = [
        "arm",
        "decisions",
        "users",
        "conversions",
        "conversion [CI]",
        "revenue/dec. [CI]",
        "discount/dec.",
        "net profit/dec. [CI]",
    ]
    title = "Per decision, descriptive: treatment vs control"
    return table(title, header, rows) + "\n" + _wrap(_DESCRIPTIVE_WHY, "  ")


def _breakdown(spec: Breakdown, comparisons: list[Comparison], title: str) -> str:
    rows = [
        [
            str(x.key),
            f"{x.treatment['decisions']:,}" if x.treatment else "0",
            f"{x.control['decisions']:,}" if x.control else "0",
            pct(x.treatment["conversion_rate"]) if x.treatment else "",
            pct(x.control["conversion_rate"]) if x.control else "",
            points_ci(x.conversion_difference) if x.conversion_difference else "",
            money(x.net_treatment) if x.net_treatment is not None else "",
            money(x.net_control) if x.net_control is not None else "",
            difference_ci(x.net_difference) if x.net_difference else "",
        ]
        for x in comparisons
    ]
    header = [
        spec.key,
        "dec. T",
        "dec. C",
        "conv. T",
        "conv. C",
        "conv. T-C (points) [CI]",
        "net/dec. T",
        "net/dec. C",
        "net/dec. T-C [CI]",
    ]
    return table(title, header, rows) + "\n" + _wrap(_DESCRIPTIVE, "  ")


# --- fairness: per group ---------------------------------------------------------------------

FAIRNESS_TITLE = (
    "Fairness: offers and discounts per group at each decision (the decision's own groups), "
    "and the effect per user by what was fixed before their first decision"
)


def fairness_table(groups: list[GroupOffers]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of one dimension's groups of decisions (shared with the HTML
    page)."""
    rows = []
    for g in groups:
        d = g.disparity
        rows.append(
            [
                g.group,
                f"{g.treated_users:,}",
                f"{g.control_users:,}",
                f"{g.treated_decisions:,}",
                pct_ci(d.rate) if d else "",
                _ratio(d.ratio) if d else "",
                fairness_flag(g),
                money_ci(g.discount_per_decision) if g.discount_per_decision else "",
                points_ci(g.conversion) if g.conversion else "",
            ]
        )
    header = [
        "group",
        "users T",
        "users C",
        "decisions T",
        "offer rate T [CI]",
        "highest/this",
        "flag",
        "discount/dec. T [CI]",
        "conv./dec. T-C (points) [CI]",
    ]
    return header, rows


def group_effect_table(groups: list[GroupEffect]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of one grouping of users for the per-user effect."""
    rows = [
        [
            g.group,
            f"{g.treated_users:,}",
            f"{g.control_users:,}",
            points_ci(g.conversion) if g.conversion else "",
            difference_ci(g.net) if g.net else "",
        ]
        for g in groups
    ]
    header = ["group", "users T", "users C", "conv. T-C (points) [CI]", "net/user T-C [CI]"]
    return header, rows


def fairness_flag(g: GroupOffers) -> str:
    d = g.disparity
    if d is None or not d.flagged:
        return ""
    return "ALERT" if d.clear else "beyond (noise?)"


def fairness_alerts(f: Fairness) -> list[str]:
    """One line per flagged group, or one saying none is (shared with the HTML page)."""
    alerts = [
        f"{'ALERT' if g.disparity.clear else 'possible'}: {dict(DIMENSIONS)[g.dimension]} "
        f"{g.group!r} is offered on {g.disparity.rate.value:.1%} of treated decisions, "
        f"{_ratio(g.disparity.ratio)} below the most-offered group's rate "
        f"(PROMO_FAIRNESS_MAX_RATIO {f.max_ratio:g})"
        + ("" if g.disparity.clear else "; within noise at the intervals' ends")
        for g in f.flagged()
        if g.disparity is not None
    ]
    return alerts or [
        f"no group's offer rate is {f.max_ratio:g}x or more below its dimension's highest"
    ]


def fairness_notes(f: Fairness) -> list[str]:
    """What the tables mean (shared with the HTML page)."""
    return [
        "at each decision: a decision counts in the groups it was logged with, so a user who "
        "buys moves from 'new' to 'regular'; offer rate: offers sent per treated decision; "
        "highest/this: the dimension's highest offer rate over this group's; ALERT when it "
        f"exceeds {f.max_ratio:g} even between the facing ends of the two 95% intervals, "
        "'beyond (noise?)' when only the point estimates do; intervals take the user as the "
        "unit (a few heavy users are a few observations); '(not logged)' and '(none sent)' "
        "are shown but never flagged nor compared with",
        "conv./dec. T-C compares treatment and control decisions within a group: "
        "descriptive, since a decision's group can follow from earlier offers",
        "effect per user: the headline's comparison (no CUPED) within groups fixed before "
        f"the first decision: a purchase in the {PRE_PERIOD_DAYS} days before it (the CUPED "
        "covariate's pre-period), and the platform group it was logged with; segments are "
        "targeted on purpose, so their offer rates are expected to differ",
    ]


def fairness_section(f: Fairness) -> str:
    parts = [FAIRNESS_TITLE]
    for dimension, label in DIMENSIONS:
        groups = f.dimensions.get(dimension, [])
        if not groups:
            parts.append(f"  by {label}: no decisions yet")
            continue
        parts.append(table(f"  by {label}", *fairness_table(groups)))
    for dimension, label in EFFECT_DIMENSIONS:
        effects = f.effects.get(dimension, [])
        if not effects:
            parts.append(f"  effect per user by {label}: no users in both arms yet")
            continue
        parts.append(table(f"  effect per user by {label}", *group_effect_table(effects)))
    parts += [_wrap(line, "  ") for line in (*fairness_alerts(f), *fairness_notes(f))]
    return "\n".join(parts)


def _ratio(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return "∞" if math.isinf(x) else f"{x:.2f}x"


# --- ground truth, spend, suppressions, dead letters, events ----------------------------------


def _ground_truth_section(truth: GroundTruth) -> str:
    rows = [
        [
            arm,
            f"{r['decisions']:,}",
            money(r["mean_chosen"]),
            money(r["mean_policy"]),
            money(r["mean_none"]),
            money(r["mean_oracle"]),
            money(r["mean_policy"] - r["mean_none"]),
            money(r["mean_oracle"] - r["mean_policy"]),
            pct(r["policy_is_best"]),
        ]
        for arm, r in truth.by_arm.items()
    ]
    header = [
        "arm",
        "decisions",
        "chosen",
        "policy",
        "none",
        "oracle",
        "policy-none",
        "regret",
        "policy=oracle",
    ]
    title = (
        f"Decision quality against ground truth (sim run {truth.run_id}): "
        "mean true expected profit per decision"
    )
    return table(title, header, rows)


def budget_note(daily_budget: float | None) -> str:
    if daily_budget:
        return f"daily budget {money(daily_budget)} of expected discount"
    return "no daily budget set (PROMO_DAILY_BUDGET)"


def _spend_section(spend: list[SpendDay], daily_budget: float | None) -> str:
    rows = [
        [
            str(d.day),
            f"{d.offers_sent:,}",
            money(d.realised_discount),
            f"{d.withheld:,}",
            money(d.withheld_cost),
        ]
        for d in spend
    ]
    return table(
        f"Spend per day (UTC; {budget_note(daily_budget)}; "
        "realised = coupon discount on purchases that day)",
        ["day", "offers sent", "realised discount", "withheld by budget", "their expected cost"],
        rows,
    )


#: The reasons as the suppression contract lists them (``schemas.suppressions``).
SUPPRESSION_REASONS = (
    f"no decision taken: {', '.join(INELIGIBLE)}; offer withheld: {', '.join(WITHHELD)}"
)
SUPPRESSIONS_TITLE = f"Suppressed decision points by reason ({SUPPRESSION_REASONS})"


def _suppressions_section(suppressed: list[Suppressed]) -> str:
    if not suppressed:
        return "Suppressed decision points by reason\n  none"
    return table(
        SUPPRESSIONS_TITLE,
        ["reason", "decision points", "users", "expected cost of withheld offers"],
        [[s.reason, f"{s.decision_points:,}", f"{s.users:,}", money(s.expected_cost)]
         for s in suppressed],
    )  # fmt: skip


def gating_saved(suppressed: list[Suppressed]) -> str:
    """What the abuse gate saved, as far as the logs can tell: the expected discount of the
    offers it withheld. An estimate: whether those users were hunters, and whether the
    offers would have been redeemed, the logs cannot say.

    >>> print(textwrap.fill(gating_saved([Suppressed("abuse", 12, 5, 61.5)]), 88))
    Abuse gate: 12 decision points of 5 users sent nothing; the offers withheld would have
    cost an expected 61.50 in discount (an estimate at decision time, not a measured saving)
    >>> gating_saved([])
    'Abuse gate: no decision point gated'
    """
    gated = next((s for s in suppressed if s.reason == "abuse"), None)
    if gated is None:
        return "Abuse gate: no decision point gated"
    return (
        f"Abuse gate: {gated.decision_points:,} decision points of {gated.users:,} users sent "
        f"nothing; the offers withheld would have cost an expected "
        f"{money(gated.expected_cost)} in discount (an estimate at decision time, not a "
        "measured saving)"
    )


QUALITY_TITLE = "Purchase model: its predictions against what followed, by day of the decision"


def _quality_section(days: list[QualityDay]) -> str:
    if not days:
        return f"{QUALITY_TITLE}\n  no decision with a logged prediction has its window closed yet"
    rows = [
        [str(d.day), f"{d.decisions:,}", f"{d.mean_predicted:.1%}", f"{d.buyers / d.decisions:.1%}",
         f"{d.log_loss:.3f}", f"{d.reference_log_loss:.3f}",
         "n/a" if math.isnan(d.auc) else f"{d.auc:.3f}", f"{d.offers:,}",
         *(_offers_rated(d) if d.offers else ["", ""])]
        for d in days
    ]  # fmt: skip
    header = ["day", "decisions", "predicted", "bought", "log-loss", "no-skill", "AUC",
              "offers", "offers: predicted", "offers: bought [95% CI]"]  # fmt: skip
    note = (
        "each decision's P(buy | its action) when it was taken, against whether the user "
        "bought in its window; no-skill: the log-loss of predicting the day's buying rate for "
        "everyone (lower is better); a decision counts once its window has closed by the latest "
        "decision's time (counted as they come, buyers would be known before non-buyers). "
        "Offers: the decisions that sent one, judged apart (the policy sends the offers it "
        "rates highest, so that is where a model's errors show first); 'overrated' or "
        "'underrated' where their predicted rate lies above or below the interval of the share "
        "that bought (Wilson, decisions taken as independent)"
    )
    return table(QUALITY_TITLE, header, rows) + "\n" + _wrap(note, "  ")


def _offers_rated(day: QualityDay) -> list[str]:
    bought = day.offers_bought
    rated = f" {day.offers_rated}" if day.offers_rated else ""
    return [
        f"{day.offers_predicted:.1%}",
        f"{bought.value:.1%} [{bought.low:.1%}, {bought.high:.1%}]{rated}",
    ]


def _dead_letters_section(rows: list[tuple[str, int]]) -> str:
    if not rows:
        return "Dead letters by reason\n  none"
    return table(
        "Dead letters by reason", ["reason", "messages"], [[reason, f"{n:,}"] for reason, n in rows]
    )


def _events_section(rows: list[tuple[str, int, int]]) -> str:
    if not rows:
        return "Events by type\n  none yet"
    return table(
        "Events by type", ["type", "events", "users"], [[t, f"{n:,}", f"{u:,}"] for t, n, u in rows]
    )


# --- formatting: shared with the HTML report, so both show the same digits ---------------------


def _wrap(text: str, first: str) -> str:
    return textwrap.fill(
        text,
        width=_WIDTH,
        initial_indent=first,
        subsequent_indent=" " * len(first) + "  ",
        break_on_hyphens=False,
    )


def signed_pct_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    if math.isnan(e.low):
        return f"{e.value:+.1%}"
    return f"{e.value:+.1%} [{e.low:+.1%}, {e.high:+.1%}]"


def points_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    if math.isnan(e.low):
        return f"{e.value * 100:+.2f}"
    return f"{e.value * 100:+.2f} [{e.low * 100:+.2f}, {e.high * 100:+.2f}]"


def difference_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    if math.isnan(e.low):
        return f"{e.value:+,.2f}"
    return f"{e.value:+,.2f} [{e.low:+,.2f}, {e.high:+,.2f}]"


def roi_ci(e: Estimate | None) -> str:
    return "not estimable" if e is None else f"{e.value:+.2f} [{e.low:+.2f}, {e.high:+.2f}]"


def detectable(mde: float, points: bool) -> str:
    if math.isnan(mde):
        return "n/a"
    return f"±{mde * 100:.2f}" if points else f"±{mde:,.2f}"


def cuped_outcome(e: CupedEstimate) -> str:
    if e.theta == 0:
        return "with no variation to adjust by, CUPED equals the raw difference"
    if e.variance_reduction >= 0:
        change = f"reduced by {e.variance_reduction:.1%}"
    else:
        change = f"increased by {-e.variance_reduction:.1%} (a small sample's noise)"
    return f"theta {e.theta:.3f}, variance of the net profit difference {change}"

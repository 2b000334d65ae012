"""The evaluation report: what the promotions did, read from the ClickHouse views.

The headline compares *users* (intention to treat): a user's arm is random and sticky, so
treatment and control users are two random samples, and each user's purchases from their
first decision on count once. It gives every difference with its 95 % interval, the smallest
effect the sample could detect, a CUPED-adjusted difference (covariate: each user's net profit
in the ``PRE_PERIOD_DAYS`` before their first decision) and says in words what the data can
and cannot support. Per-decision tables (by offer, segment, policy version) are descriptive:
their intervals treat a user's decisions as independent, so they are optimistic.

The maths and the definitions of revenue, discount, net profit and ROI are in
``streams.evaluation``. ``build_report`` only queries and formats; the CLI prints its result.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from clickhouse_driver import Client

from promo.off_policy import format_off_policy, off_policy_estimates
from promo.text_tables import money, money_ci, pct, pct_ci, table
from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec
from streams.evaluation import (
    CupedEstimate,
    Estimate,
    Moments,
    PairMoments,
    cuped_difference,
    difference_standard_error,
    mean_difference,
    mean_interval,
    minimum_detectable_effect,
    net_margin_moments,
    proportion_difference,
    ratio_of_differences,
    relative_uplift,
    wilson_interval,
)

Row = dict[str, Any]
Floats = npt.NDArray[np.float64]

#: CUPED's covariate is each user's net profit in this many days before their first decision.
PRE_PERIOD_DAYS = 7

_ARMS = ("treatment", "control")
_WIDTH = 100  # of wrapped notes; tables are as wide as their cells
_DESCRIPTIVE = (
    "descriptive: intervals treat a user's decisions as independent, so they are optimistic"
)
_DESCRIPTIVE_WHY = (
    f"{_DESCRIPTIVE} (one user's decisions are correlated, and treated users make more of "
    "them); conclusions come from the per-user headline"
)


@dataclass(frozen=True)
class ProfitEffect:
    """The headline's net profit per user, treatment - control, as the verdict reads it."""

    per_user: Estimate
    treatment_users: int
    control_users: int
    cuped: bool


def net_profit_effect(client: Client, *, gross_margin: float) -> ProfitEffect | None:
    """The report's own per-user net profit difference (raw, or CUPED where the covariate
    varies), for callers that compare it with a truth (``promo evaluate``); None without
    two users in each arm."""
    users = _user_figures(client)
    t, c = users.get("treatment"), users.get("control")
    if t is None or c is None or t.n < 2 or c.n < 2:
        return None
    xt, xc = t.covariate(gross_margin), c.covariate(gross_margin)
    net = _measure("net profit per user", t.net(gross_margin), c.net(gross_margin), xt, xc)
    return ProfitEffect(net.primary[0], t.n, c.n, net.adjusted)


def build_report(
    client: Client,
    *,
    gross_margin: float,
    catalogue: tuple[OfferSpec, ...] = DEFAULT_CATALOGUE,
    daily_budget: float | None = None,
) -> str:
    """The whole report as text: fixed-width tables, one section per question."""
    if not 0 < gross_margin <= 1:
        raise ValueError("gross_margin must be in (0, 1]")
    arms = {r["arm"]: r for r in _query(client, "SELECT * FROM v_treatment_vs_control")}
    sections = [
        f"promo-stream report (gross margin {gross_margin:.0%} of revenue before discounts)"
    ]
    if not arms:
        sections.append("no decisions yet")
    else:
        sections += _headline_sections(_user_figures(client), gross_margin)
        sections += [
            _arms_section(arms, gross_margin),
            _breakdown(
                client,
                "v_by_offer",
                "offer",
                "By offer, descriptive (control: the offer the policy would have sent)",
                gross_margin,
            ),
            _breakdown(client, "v_by_segment", "segment", "By segment, descriptive", gross_margin),
            _breakdown(
                client,
                "v_by_policy_version",
                "policy_version",
                "By policy version, descriptive",
                gross_margin,
            ),
        ]
        estimates = off_policy_estimates(client, gross_margin=gross_margin, catalogue=catalogue)
        sections.append(format_off_policy(estimates))
        truth = _ground_truth_section(client)
        if truth:
            sections.append(truth)
        sections += [_spend_section(client, daily_budget), _suppressions_section(client)]
    sections += [_dead_letters_section(client), _events_section(client)]
    return "\n\n".join(sections) + "\n"


def _query(client: Client, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
    rows, columns = client.execute(sql, params, with_column_types=True)
    names = [name for name, _ in columns]
    return [dict(zip(names, row, strict=True)) for row in rows]


# --- the headline: per user, intention to treat ------------------------------------------------

# One row per user with a decision (v_user_outcomes), plus their purchases in the pre-period:
# strictly before their first decision, so no offer can have touched them and the covariate
# cannot depend on the arm. No coupon applies there either (coupons follow decisions), so
# pre-period net profit is margin * pre_revenue.
_USERS_SQL = """
SELECT
    arm,
    any(converted) AS converted,
    any(revenue) AS revenue,
    any(discount) AS discount,
    countIf(in_pre_period) AS pre_purchases,
    sumIf(purchase_total, in_pre_period) AS pre_revenue
FROM
(
    SELECT
        user_id, arm, converted, revenue, discount, purchase_total,
        purchase_ms > 0 AND purchase_ms < first_decision_ms
            AND purchase_ms + %(pre_period_ms)s >= first_decision_ms AS in_pre_period
    FROM v_user_outcomes
    ALL LEFT JOIN
    (
        SELECT user_id, ts_ms AS purchase_ms, ifNull(order_total, 0) AS purchase_total
        FROM events FINAL
        WHERE type = 'purchase'
    ) AS purchase USING user_id
)
GROUP BY user_id, arm
"""


@dataclass(frozen=True)
class _UserFigures:
    """One arm's users, one array element per user, from their first decision on."""

    converted: Floats
    revenue: Floats
    discount: Floats
    pre_purchases: Floats
    pre_revenue: Floats

    @property
    def n(self) -> int:
        return len(self.converted)

    def net(self, margin: float) -> Floats:
        return margin * (self.revenue + self.discount) - self.discount

    def covariate(self, margin: float) -> Floats:
        """Net profit in the pre-period (no coupon can apply before the first decision)."""
        return margin * self.pre_revenue


def _user_figures(client: Client) -> dict[str, _UserFigures]:
    """Per-user figures by arm, read in one query so that both arms are one snapshot."""
    params = {"pre_period_ms": PRE_PERIOD_DAYS * 86_400_000}
    columns = client.execute(_USERS_SQL, params, columnar=True)
    if not columns:
        return {}
    arm, *values = (np.asarray(column) for column in columns)
    return {
        name: _UserFigures(*(v[arm == name].astype(float) for v in values))
        for name in _ARMS
        if np.any(arm == name)
    }


@dataclass(frozen=True)
class _Measure:
    """A per-user difference (treatment - control), raw and CUPED-adjusted.

    The verdict rests on a rule fixed in advance, never on which estimate looks better: CUPED
    for money whenever the covariate varies (theta is then defined); the raw Newcombe interval
    for conversion, which keeps its coverage on small or extreme shares.
    """

    name: str
    raw: Estimate
    mde: float
    cuped: CupedEstimate
    points: bool = False

    @property
    def adjusted(self) -> bool:
        return not self.points and self.cuped.theta != 0

    @property
    def primary(self) -> tuple[Estimate, float]:
        """The estimate the verdict rests on, with its minimum detectable effect."""
        if self.adjusted:
            return self.cuped.difference, minimum_detectable_effect(self.cuped.standard_error)
        return self.raw, self.mde


def _measure(
    name: str, t: Floats, c: Floats, xt: Floats, xc: Floats, points: bool = False
) -> _Measure:
    mt, mc = Moments.of(t), Moments.of(c)
    raw = (
        proportion_difference(int(mt.total), mt.n, int(mc.total), mc.n)
        if points
        else mean_difference(mt, mc)
    )
    mde = minimum_detectable_effect(difference_standard_error(mt, mc))
    cuped = cuped_difference(PairMoments.of(t, xt), PairMoments.of(c, xc))
    return _Measure(name, raw, mde, cuped, points)


def _headline_sections(users: dict[str, _UserFigures], margin: float) -> list[str]:
    t, c = users.get("treatment"), users.get("control")
    sections = [_users_section(users, margin)]
    title = "Effect of the promotion per user (treatment - control)"
    if t is None or c is None or t.n < 2 or c.n < 2:
        return [*sections, f"{title}\n  needs at least two users in each arm"]
    xt, xc = t.covariate(margin), c.covariate(margin)
    conversion = _measure("conversion", t.converted, c.converted, xt, xc, points=True)
    revenue = _measure("revenue per user", t.revenue, c.revenue, xt, xc)
    net = _measure("net profit per user", t.net(margin), c.net(margin), xt, xc)
    discount = mean_difference(Moments.of(t.discount), Moments.of(c.discount))
    uplift = relative_uplift(int(t.converted.sum()), t.n, int(c.converted.sum()), c.n)
    roi = ratio_of_differences(
        PairMoments.of(t.net(margin), t.discount), PairMoments.of(c.net(margin), c.discount)
    )
    rows = [
        _measure_row("conversion rate (points)", conversion),
        ["relative conversion uplift", _signed_pct_ci(uplift), "", "", ""],
        _measure_row("revenue per user", revenue),
        ["discount per user", _difference_ci(discount), "", "", ""],
        _measure_row("net profit per user", net),
        ["ROI of the promotion", _roi(roi), "", "", ""],
    ]
    header = ["measure", "T - C [95% CI]", "detectable", "CUPED T - C [95% CI]", "detectable"]
    pre_buyers = int((t.pre_purchases > 0).sum() + (c.pre_purchases > 0).sum())
    notes = [
        "net profit = margin * (revenue + discount) - discount; ROI = incremental net profit / "
        "incremental discount (delta method), not estimable while the incremental discount's "
        "interval includes 0",
        "detectable = minimum detectable effect: the smallest true difference this sample "
        "detects 80% of the time at 95% confidence, (z_0.975 + z_0.80) * standard error",
        f"CUPED covariate: each user's net profit in the {PRE_PERIOD_DAYS} days before their "
        f"first decision ({pre_buyers:,} of {t.n + c.n:,} users bought then); "
        + _cuped_outcome(net.cuped),
    ]
    verdict = [_verdict(conversion, t.n, c.n), _verdict(net, t.n, c.n), _roi_verdict(roi)]
    return [
        *sections,
        "\n".join([table(title, header, rows), *(_wrap(line, "  ") for line in notes)]),
        "\n".join(
            [
                "What this sample can support (95% confidence, 80% power)",
                *(_wrap(line, "  - ") for line in verdict),
            ]
        ),
    ]


def _users_section(users: dict[str, _UserFigures], margin: float) -> str:
    rows = []
    for arm in _ARMS:
        u = users.get(arm)
        if u is None:
            rows.append([arm, "0", "", "", "", "", ""])
            continue
        rows.append(
            [
                arm,
                f"{u.n:,}",
                f"{int(u.converted.sum()):,}",
                pct_ci(wilson_interval(int(u.converted.sum()), u.n)),
                money_ci(mean_interval(Moments.of(u.revenue))),
                money(float(u.discount.mean())),
                money_ci(mean_interval(Moments.of(u.net(margin)))),
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


def _measure_row(label: str, m: _Measure) -> list[str]:
    show = _points_ci if m.points else _difference_ci
    row = [label, show(m.raw), _detectable(m.mde, m.points)]
    if m.cuped.theta == 0:  # the covariate does not vary: nothing to adjust with
        return [*row, "same as raw", ""]
    cuped_mde = minimum_detectable_effect(m.cuped.standard_error)
    return [*row, show(m.cuped.difference), _detectable(cuped_mde, m.points)]


def _verdict(m: _Measure, n_t: int, n_c: int) -> str:
    estimate, mde = m.primary
    which = " (CUPED-adjusted)" if m.adjusted else ""
    unit = " points" if m.points else " per user"
    ci = _points_ci(estimate) if m.points else _difference_ci(estimate)
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
        f"{verdict}; a true effect would need to be {_detectable(mde, m.points)}{unit} or more "
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
            f"ROI {_roi(roi)} includes 0 (break-even): whether the discounts pay for "
            "themselves is not detectable at this sample size"
        )
    verdict = "pay for themselves" if roi.value > 0 else "cost more than they bring"
    return f"ROI {_roi(roi)}: the discounts {verdict} (the 95% interval excludes break-even)"


# --- descriptive, per decision -----------------------------------------------------------------


def _revenue(r: Row) -> Moments:
    return Moments(r["decisions"], r["sum_revenue"], r["sum_revenue_sq"])


def _discount(r: Row) -> Moments:
    return Moments(r["decisions"], r["sum_discount"], r["sum_discount_sq"])


def _net(r: Row, margin: float) -> Moments:
    return net_margin_moments(
        r["decisions"],
        r["sum_revenue"],
        r["sum_revenue_sq"],
        r["sum_discount"],
        r["sum_discount_sq"],
        r["sum_revenue_discount"],
        margin,
    )


def _arms_section(arms: dict[str, Row], margin: float) -> str:
    rows = []
    for arm in _ARMS:
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
                money_ci(mean_interval(_revenue(r))),
                money(_discount(r).mean),
                money_ci(mean_interval(_net(r, margin))),
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


def _breakdown(client: Client, view: str, key: str, title: str, margin: float) -> str:
    by_key: dict[Any, dict[str, Row]] = {}
    for r in _query(client, f"SELECT * FROM {view} ORDER BY {key}, arm"):
        by_key.setdefault(r[key], {})[r["arm"]] = r
    rows = []
    for value, arms in by_key.items():
        t, c = arms.get("treatment"), arms.get("control")
        conversion_diff = net_diff = ""
        if t and c:  # a difference needs both arms
            conversion_diff = _points_ci(
                proportion_difference(
                    t["conversions"], t["decisions"], c["conversions"], c["decisions"]
                )
            )
            net_diff = _difference_ci(mean_difference(_net(t, margin), _net(c, margin)))
        rows.append(
            [
                str(value),
                f"{t['decisions']:,}" if t else "0",
                f"{c['decisions']:,}" if c else "0",
                pct(t["conversion_rate"]) if t else "",
                pct(c["conversion_rate"]) if c else "",
                conversion_diff,
                money(_net(t, margin).mean) if t else "",
                money(_net(c, margin).mean) if c else "",
                net_diff,
            ]
        )
    header = [
        key,
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


# --- ground truth, dead letters, events --------------------------------------------------------

_TRUTH_SQL = """
SELECT
    arm,
    count() AS decisions,
    avg(chosen_profit) AS mean_chosen,
    avg(policy_profit) AS mean_policy,
    avg(none_profit) AS mean_none,
    avg(best_profit) AS mean_oracle,
    avg(policy_profit >= best_profit) AS policy_is_best
FROM
(
    SELECT
        if(control = 1, 'control', 'treatment') AS arm,
        profits[indexOf(actions, chosen_offer)] AS chosen_profit,
        profits[indexOf(actions, policy_offer)] AS policy_profit,
        profits[indexOf(actions, 'none')] AS none_profit,
        arrayReduce('max', profits) AS best_profit,
        indexOf(actions, chosen_offer) > 0 AND indexOf(actions, policy_offer) > 0
            AND indexOf(actions, 'none') > 0 AS known
    FROM decisions FINAL
    ALL INNER JOIN
    (
        SELECT user_id, groupArray(action) AS actions, groupArray(expected_profit) AS profits
        FROM sim_truth FINAL
        WHERE run_id = %(run_id)s
        GROUP BY user_id
    ) AS truth USING user_id
    WHERE ts_ms >= %(start_ms)s AND (%(end_ms)s = 0 OR ts_ms <= %(end_ms)s)
)
WHERE known
GROUP BY arm
"""


def _ground_truth_section(client: Client) -> str | None:
    """Mean true expected profit of the actions taken, for the latest simulator run.

    Decisions carry no run id: they are matched on user id (the simulator's ids carry its run
    id) within the latest run's simulated time span.
    """
    runs = _query(
        client,
        "SELECT run_id, sim_start_ms, sim_end_ms FROM sim_runs FINAL "
        "ORDER BY started_at DESC, run_id DESC LIMIT 1",
    )
    if not runs:
        return None
    run = runs[0]
    params = {"run_id": run["run_id"], "start_ms": run["sim_start_ms"], "end_ms": run["sim_end_ms"]}
    arms = {r["arm"]: r for r in _query(client, _TRUTH_SQL, params)}
    if not arms:
        return None
    rows = []
    for arm in (*_ARMS, "all"):
        if arm == "all":
            r = _pooled(list(arms.values()))
        elif arm in arms:
            r = arms[arm]
        else:
            continue
        rows.append(
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
        )
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
        f"Decision quality against ground truth (sim run {run['run_id']}): "
        "mean true expected profit per decision"
    )
    return table(title, header, rows)


def _pooled(rows: Sequence[Row]) -> Row:
    n = sum(r["decisions"] for r in rows)
    pooled: Row = {"decisions": n}
    for name in ("mean_chosen", "mean_policy", "mean_none", "mean_oracle", "policy_is_best"):
        pooled[name] = sum(r[name] * r["decisions"] for r in rows) / n
    return pooled


_WITHHELD_BY_BUDGET = "reason IN ('budget', 'pacing')"


def _spend_section(client: Client, daily_budget: float | None) -> str:
    """Offers and discount per UTC day: sent, realised, and what the budget held back."""
    sent = dict(
        client.execute(
            "SELECT toDate(ts) AS day, countIf(chosen_offer != 'none') FROM decisions FINAL "
            "GROUP BY day"
        )
    )
    realised = dict(
        client.execute(
            "SELECT toDate(ts) AS day, sum(discount) FROM outcomes FINAL "
            "WHERE type = 'purchase' GROUP BY day"
        )
    )
    held = {
        day: (n, cost)
        for day, n, cost in client.execute(
            f"SELECT toDate(ts) AS day, countIf({_WITHHELD_BY_BUDGET}), "
            f"sumIf(expected_cost, {_WITHHELD_BY_BUDGET}) FROM suppressions FINAL GROUP BY day"
        )
    }
    budget = (
        f"daily budget {money(daily_budget)} of expected discount"
        if daily_budget
        else ("no daily budget set (PROMO_DAILY_BUDGET)")
    )
    rows = [
        [
            str(day),
            f"{sent.get(day, 0):,}",
            money(realised.get(day, 0.0)),
            f"{held.get(day, (0, 0.0))[0]:,}",
            money(held.get(day, (0, 0.0))[1]),
        ]
        for day in sorted({*sent, *realised, *held})
    ]
    return table(
        f"Spend per day (UTC; {budget}; realised = coupon discount on purchases that day)",
        ["day", "offers sent", "realised discount", "withheld by budget", "their expected cost"],
        rows,
    )


def _suppressions_section(client: Client) -> str:
    rows = client.execute(
        "SELECT reason, count() AS n, uniqExact(user_id), sum(expected_cost) "
        "FROM suppressions FINAL GROUP BY reason ORDER BY n DESC, reason"
    )
    if not rows:
        return "Suppressed decision points by reason\n  none"
    return table(
        "Suppressed decision points by reason (no decision taken: late, cooldown, "
        "open_decisions, daily_cap, weekly_cap; offer withheld: control, budget, pacing)",
        ["reason", "decision points", "users", "expected cost of withheld offers"],
        [[r, f"{n:,}", f"{u:,}", money(c)] for r, n, u, c in rows],
    )


def _dead_letters_section(client: Client) -> str:
    rows = client.execute(
        "SELECT reason, count() AS n FROM dead_letters FINAL "
        "GROUP BY reason ORDER BY n DESC, reason"
    )
    if not rows:
        return "Dead letters by reason\n  none"
    return table(
        "Dead letters by reason", ["reason", "messages"], [[reason, f"{n:,}"] for reason, n in rows]
    )


def _events_section(client: Client) -> str:
    rows = client.execute(
        "SELECT type, count() AS n, uniqExact(user_id) FROM events FINAL "
        "GROUP BY type ORDER BY n DESC, type"
    )
    if not rows:
        return "Events by type\n  none yet"
    return table(
        "Events by type", ["type", "events", "users"], [[t, f"{n:,}", f"{u:,}"] for t, n, u in rows]
    )


# --- formatting --------------------------------------------------------------------------------


def _wrap(text: str, first: str) -> str:
    return textwrap.fill(
        text,
        width=_WIDTH,
        initial_indent=first,
        subsequent_indent=" " * len(first) + "  ",
        break_on_hyphens=False,
    )


def _signed_pct_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    if math.isnan(e.low):
        return f"{e.value:+.1%}"
    return f"{e.value:+.1%} [{e.low:+.1%}, {e.high:+.1%}]"


def _points_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    return f"{e.value * 100:+.2f} [{e.low * 100:+.2f}, {e.high * 100:+.2f}]"


def _difference_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    if math.isnan(e.low):
        return f"{e.value:+,.2f}"
    return f"{e.value:+,.2f} [{e.low:+,.2f}, {e.high:+,.2f}]"


def _roi(e: Estimate | None) -> str:
    return "not estimable" if e is None else f"{e.value:+.2f} [{e.low:+.2f}, {e.high:+.2f}]"


def _detectable(mde: float, points: bool) -> str:
    if math.isnan(mde):
        return "n/a"
    return f"±{mde * 100:.2f}" if points else f"±{mde:,.2f}"


def _cuped_outcome(e: CupedEstimate) -> str:
    if e.theta == 0:
        return "with no variation to adjust by, CUPED equals the raw difference"
    if e.variance_reduction >= 0:
        change = f"reduced by {e.variance_reduction:.1%}"
    else:
        change = f"increased by {-e.variance_reduction:.1%} (a small sample's noise)"
    return f"theta {e.theta:.3f}, variance of the net profit difference {change}"

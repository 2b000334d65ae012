"""The report's figures as values, read once from the ClickHouse views: ``promo report``
formats them as text (``promo.report``), ``promo report --html`` draws them
(``promo.report_html``). Both render the same ``Evaluation``, so the two can never disagree.

The headline compares *users* (intention to treat): a user's arm is random and sticky, so
treatment and control users are two random samples, and each user's purchases from their
first decision on count once. Every difference comes with its 95 % interval, the smallest
effect the sample could detect and a CUPED-adjusted difference (covariate: each user's net
profit in the ``PRE_PERIOD_DAYS`` before their first decision). Per-decision breakdowns (by
day, offer, segment, rule segment, policy version) are descriptive: their intervals treat a user's
decisions as independent, so they are optimistic.

The maths and the definitions of revenue, discount, net profit and ROI are in
``streams.evaluation``; this module only queries and applies them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from clickhouse_driver import Client

from promo import cumulative_users, model_quality
from promo.clickhouse import query
from promo.fairness import Fairness, read_fairness
from promo.model_quality import CalibrationBin, QualityDay
from promo.off_policy import PolicyEstimates, off_policy_estimates
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
    net_profit_moments,
    proportion_difference,
    ratio_of_differences,
    relative_uplift,
    wilson_interval,
)
from streams.fairness import DEFAULT_MAX_RATIO

Row = dict[str, Any]
Floats = npt.NDArray[np.float64]

#: CUPED's covariate is each user's net profit in this many days before their first decision.
PRE_PERIOD_DAYS = 7

ARMS = ("treatment", "control")


# --- the headline: per user, intention to treat ------------------------------------------------

# One row per user with a decision (v_user_outcomes), plus their purchases in the pre-period:
# strictly before their first decision, so no offer can have touched them and the covariate
# cannot depend on the arm. No coupon applies there either (coupons follow decisions), so
# pre-period net profit is the orders' margins where known (order_margin >= 0, migration
# 0009), and margin * their total elsewhere: pre_net_fixed + margin * pre_rate_base.
# promo.cumulative_users returns the same columns per day, under an upper time bound: keep
# the two in step.
USERS_SQL = """
SELECT
    arm,
    any(converted) AS converted,
    any(revenue) AS revenue,
    any(discount) AS discount,
    any(rate_base) AS rate_base,
    any(net_fixed) AS net_fixed,
    countIf(in_pre_period) AS pre_purchases,
    sumIf(purchase_total, in_pre_period AND purchase_margin < 0) AS pre_rate_base,
    sumIf(purchase_margin, in_pre_period AND purchase_margin >= 0) AS pre_net_fixed
FROM
(
    SELECT
        user_id, arm, converted, revenue, discount, rate_base, net_fixed, purchase_total,
        purchase_margin,
        purchase_ms > 0 AND purchase_ms < first_decision_ms
            AND purchase_ms + %(pre_period_ms)s >= first_decision_ms AS in_pre_period
    FROM v_user_outcomes
    ALL LEFT JOIN
    (
        SELECT
            user_id,
            ts_ms AS purchase_ms,
            ifNull(order_total, 0) AS purchase_total,
            order_margin AS purchase_margin
        FROM events FINAL
        WHERE type = 'purchase'
    ) AS purchase USING user_id
)
GROUP BY user_id, arm
"""


@dataclass(frozen=True)
class UserFigures:
    """One arm's users, one array element per user, from their first decision on."""

    converted: Floats
    revenue: Floats
    discount: Floats
    #: net profit = net_fixed + margin * rate_base (``streams.evaluation``'s conventions)
    rate_base: Floats
    net_fixed: Floats
    pre_purchases: Floats
    pre_rate_base: Floats
    pre_net_fixed: Floats

    @property
    def n(self) -> int:
        return len(self.converted)

    @property
    def buyers(self) -> int:
        return int(self.converted.sum())

    def net(self, margin: float) -> Floats:
        """Each user's net profit: orders' own margins where known, ``margin`` elsewhere."""
        return self.net_fixed + margin * self.rate_base

    def covariate(self, margin: float) -> Floats:
        """Net profit in the pre-period (no coupon can apply before the first decision)."""
        return self.pre_net_fixed + margin * self.pre_rate_base

    def conversion(self) -> Estimate:
        return wilson_interval(self.buyers, self.n)

    def revenue_per_user(self) -> Estimate:
        return mean_interval(Moments.of(self.revenue))

    def net_per_user(self, margin: float) -> Estimate:
        return mean_interval(Moments.of(self.net(margin)))


def user_figures(client: Client) -> dict[str, UserFigures]:
    """Per-user figures by arm, read in one query so that both arms are one snapshot."""
    params = {"pre_period_ms": PRE_PERIOD_DAYS * 86_400_000}
    columns = client.execute(USERS_SQL, params, columnar=True)
    return users_by_arm(columns) if columns else {}


def users_by_arm(columns: Sequence[npt.ArrayLike]) -> dict[str, UserFigures]:
    """USERS_SQL's columns (arm first) as each arm's figures."""
    arm, *values = (np.asarray(column) for column in columns)
    return {
        name: UserFigures(*(v[arm == name].astype(float) for v in values))
        for name in ARMS
        if np.any(arm == name)
    }


@dataclass(frozen=True)
class Measure:
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


def measure(
    name: str, t: Floats, c: Floats, xt: Floats, xc: Floats, points: bool = False
) -> Measure:
    mt, mc = Moments.of(t), Moments.of(c)
    raw = (
        proportion_difference(int(mt.total), mt.n, int(mc.total), mc.n)
        if points
        else mean_difference(mt, mc)
    )
    mde = minimum_detectable_effect(difference_standard_error(mt, mc))
    cuped = cuped_difference(PairMoments.of(t, xt), PairMoments.of(c, xc))
    return Measure(name, raw, mde, cuped, points)


@dataclass(frozen=True)
class Headline:
    """The per-user effect of the promotion, treatment - control."""

    treatment: UserFigures
    control: UserFigures
    conversion: Measure
    revenue: Measure
    net: Measure
    discount: Estimate
    uplift: Estimate
    roi: Estimate | None

    @property
    def pre_buyers(self) -> int:
        """Users of either arm who bought in the pre-period (CUPED's covariate is not 0)."""
        return int(
            (self.treatment.pre_purchases > 0).sum() + (self.control.pre_purchases > 0).sum()
        )


def headline(users: dict[str, UserFigures], margin: float) -> Headline | None:
    """None without two users in each arm: no interval can be computed."""
    t, c = users.get("treatment"), users.get("control")
    if t is None or c is None or t.n < 2 or c.n < 2:
        return None
    xt, xc = t.covariate(margin), c.covariate(margin)
    return Headline(
        treatment=t,
        control=c,
        conversion=measure("conversion", t.converted, c.converted, xt, xc, points=True),
        revenue=measure("revenue per user", t.revenue, c.revenue, xt, xc),
        net=measure("net profit per user", t.net(margin), c.net(margin), xt, xc),
        discount=mean_difference(Moments.of(t.discount), Moments.of(c.discount)),
        uplift=relative_uplift(t.buyers, t.n, c.buyers, c.n),
        roi=ratio_of_differences(
            PairMoments.of(t.net(margin), t.discount), PairMoments.of(c.net(margin), c.discount)
        ),
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
    h = headline(user_figures(client), gross_margin)
    if h is None:
        return None
    return ProfitEffect(h.net.primary[0], h.treatment.n, h.control.n, h.net.adjusted)


@dataclass(frozen=True)
class DayEffect:
    """The headline's per-user effect on everything known by the end of one UTC day."""

    day: dt.date
    treatment_users: int
    control_users: int
    conversion: Measure
    net: Measure


def effect_over_time(client: Client, margin: float) -> list[DayEffect]:
    """Cumulative intention to treat: for each day, the users assigned by then and their
    outcomes up to its end, through ``headline``; days before each arm has two users are
    left out (no interval). The last day's figures are the headline's."""
    days = cumulative_users.cumulative_user_columns(client, PRE_PERIOD_DAYS * 86_400_000)
    effects = ((day, headline(users_by_arm(columns), margin)) for day, columns in days)
    return [
        DayEffect(day, h.treatment.n, h.control.n, h.conversion, h.net)
        for day, h in effects
        if h is not None
    ]


# --- descriptive, per decision -----------------------------------------------------------------


def decision_revenue(r: Row) -> Moments:
    return Moments(r["decisions"], r["sum_revenue"], r["sum_revenue_sq"])


def decision_discount(r: Row) -> Moments:
    return Moments(r["decisions"], r["sum_discount"], r["sum_discount_sq"])


def decision_net(r: Row, margin: float) -> Moments:
    return net_profit_moments(
        r["decisions"],
        r["sum_rate_base"],
        r["sum_rate_base_sq"],
        r["sum_net_fixed"],
        r["sum_net_fixed_sq"],
        r["sum_rate_base_net_fixed"],
        margin,
    )


@dataclass(frozen=True)
class Breakdown:
    """A per-decision view keyed by one column (its rows: one per key and arm)."""

    view: str
    key: str
    label: str  # what the key is, for titles and axes
    #: The view's rows of this breakdown, where a view holds several (``v_by_group``).
    where: str = ""


BY_DAY = Breakdown("v_by_day", "day", "day (UTC)")
BY_OFFER = Breakdown("v_by_offer", "offer", "offer")
#: How the report shows a k-means segment (text and HTML alike): each decision under the
#: name logged with it, so a segment renamed because its centre moved is two rows, and an old
#: decision never appears under today's name.
SEGMENT_SHOWN_AS = "id and the name logged with each decision"
BY_SEGMENT = Breakdown(
    "v_by_group", "group_name", "k-means segment", where="WHERE dimension = 'segment'"
)
BY_RULE_SEGMENT = Breakdown("v_by_rule_segment", "rule_segment", "rule segment")
BY_POLICY_VERSION = Breakdown("v_by_policy_version", "policy_version", "policy version")
BY_TARGET = Breakdown("v_by_target", "target", "category offer and its category")
BREAKDOWNS = (BY_DAY, BY_OFFER, BY_TARGET, BY_SEGMENT, BY_RULE_SEGMENT, BY_POLICY_VERSION)


@dataclass(frozen=True)
class Comparison:
    """One key of a breakdown: each arm's decisions, conversion and net profit per decision,
    and the differences where both arms have decisions (None otherwise)."""

    key: Any
    treatment: Row | None
    control: Row | None
    net_treatment: float | None
    net_control: float | None
    conversion_difference: Estimate | None
    net_difference: Estimate | None


def compare(key: Any, t: Row | None, c: Row | None, margin: float) -> Comparison:
    conversion = net = None
    if t is not None and c is not None:  # a difference needs both arms
        conversion = proportion_difference(
            t["conversions"], t["decisions"], c["conversions"], c["decisions"]
        )
        net = mean_difference(decision_net(t, margin), decision_net(c, margin))
    return Comparison(
        key=key,
        treatment=t,
        control=c,
        net_treatment=decision_net(t, margin).mean if t is not None else None,
        net_control=decision_net(c, margin).mean if c is not None else None,
        conversion_difference=conversion,
        net_difference=net,
    )


def breakdown(client: Client, spec: Breakdown, margin: float) -> list[Comparison]:
    """One comparison per key, in the key's order."""
    by_key: dict[Any, dict[str, Row]] = {}
    for r in query(client, f"SELECT * FROM {spec.view} {spec.where} ORDER BY {spec.key}, arm"):
        by_key.setdefault(r[spec.key], {})[r["arm"]] = r
    return [
        compare(key, arms.get("treatment"), arms.get("control"), margin)
        for key, arms in by_key.items()
    ]


# --- ground truth, spend, suppressions, dead letters, events -----------------------------------

TRUTH_SQL = """
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


@dataclass(frozen=True)
class GroundTruth:
    """Mean true expected profit of the actions taken, per arm and for all ("all")."""

    run_id: str
    by_arm: dict[str, Row]


def ground_truth(client: Client) -> GroundTruth | None:
    """The simulator's truth for its latest run; None outside a simulation.

    Decisions carry no run id: they are matched on user id (the simulator's ids carry its run
    id) within the latest run's simulated time span.
    """
    runs = query(
        client,
        "SELECT run_id, sim_start_ms, sim_end_ms FROM sim_runs FINAL "
        "ORDER BY started_at DESC, run_id DESC LIMIT 1",
    )
    if not runs:
        return None
    run = runs[0]
    params = {"run_id": run["run_id"], "start_ms": run["sim_start_ms"], "end_ms": run["sim_end_ms"]}
    arms = {r["arm"]: r for r in query(client, TRUTH_SQL, params)}
    if not arms:
        return None
    by_arm = {arm: arms[arm] for arm in ARMS if arm in arms}
    return GroundTruth(run["run_id"], {**by_arm, "all": _pooled(list(arms.values()))})


def _pooled(rows: Sequence[Row]) -> Row:
    n = sum(r["decisions"] for r in rows)
    pooled: Row = {"decisions": n}
    for name in ("mean_chosen", "mean_policy", "mean_none", "mean_oracle", "policy_is_best"):
        pooled[name] = sum(r[name] * r["decisions"] for r in rows) / n
    return pooled


_WITHHELD_BY_BUDGET = "reason IN ('budget', 'pacing')"


@dataclass(frozen=True)
class SpendDay:
    """Offers and discount of one UTC day: sent, realised, and what the budget held back."""

    day: dt.date
    offers_sent: int
    realised_discount: float  # coupon discount on purchases that day
    withheld: int  # offers the budget or its pacing withheld
    withheld_cost: float  # their expected cost


def spend_per_day(client: Client) -> list[SpendDay]:
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
    return [
        SpendDay(
            day,
            sent.get(day, 0),
            realised.get(day, 0.0),
            held.get(day, (0, 0.0))[0],
            held.get(day, (0, 0.0))[1],
        )
        for day in sorted({*sent, *realised, *held})
    ]


@dataclass(frozen=True)
class Suppressed:
    """Decision points suppressed for one reason."""

    reason: str
    decision_points: int
    users: int
    expected_cost: float  # of the offers withheld


def suppressions_by_reason(client: Client) -> list[Suppressed]:
    rows = client.execute(
        "SELECT reason, count() AS n, uniqExact(user_id), sum(expected_cost) "
        "FROM suppressions FINAL GROUP BY reason ORDER BY n DESC, reason"
    )
    return [Suppressed(*row) for row in rows]


def dead_letters_by_reason(client: Client) -> list[tuple[str, int]]:
    rows = client.execute(
        "SELECT reason, count() AS n FROM dead_letters FINAL "
        "GROUP BY reason ORDER BY n DESC, reason"
    )
    return [(reason, n) for reason, n in rows]


def events_by_type(client: Client) -> list[tuple[str, int, int]]:
    """(type, events, users), the most frequent type first."""
    rows = client.execute(
        "SELECT type, count() AS n, uniqExact(user_id) FROM events FINAL "
        "GROUP BY type ORDER BY n DESC, type"
    )
    return [(kind, n, users) for kind, n, users in rows]


# --- everything, read once ---------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """Every figure of the report. ``arms`` is empty before the first decision; the sections
    that need decisions are then empty too."""

    gross_margin: float
    daily_budget: float | None
    arms: dict[str, Row]  # per decision, v_treatment_vs_control
    users: dict[str, UserFigures]
    headline: Headline | None
    breakdowns: dict[Breakdown, list[Comparison]]
    off_policy: list[PolicyEstimates]
    truth: GroundTruth | None
    spend: list[SpendDay]
    suppressions: list[Suppressed]
    dead_letters: list[tuple[str, int]]
    events: list[tuple[str, int, int]]
    #: the purchase model's predictions against outcomes, per day and in calibration bins
    quality: list[QualityDay] = field(default_factory=list)
    calibration: list[CalibrationBin] = field(default_factory=list)
    #: the headline day by day, cumulative (intention to treat)
    over_time: list[DayEffect] = field(default_factory=list)
    #: offer rates, discounts and effects per group, with the alert on offer rates
    fairness: Fairness | None = None


def read_evaluation(
    client: Client,
    *,
    gross_margin: float,
    catalogue: tuple[OfferSpec, ...] = DEFAULT_CATALOGUE,
    daily_budget: float | None = None,
    fairness_max_ratio: float = DEFAULT_MAX_RATIO,
) -> Evaluation:
    if not 0 < gross_margin <= 1:
        raise ValueError("gross_margin must be in (0, 1]")
    arms = {r["arm"]: r for r in query(client, "SELECT * FROM v_treatment_vs_control")}
    decided = bool(arms)
    users = user_figures(client) if decided else {}
    predictions = model_quality.read_rows(client) if decided else []
    return Evaluation(
        gross_margin=gross_margin,
        daily_budget=daily_budget,
        arms=arms,
        users=users,
        headline=headline(users, gross_margin),
        breakdowns={
            spec: breakdown(client, spec, gross_margin) if decided else [] for spec in BREAKDOWNS
        },
        off_policy=off_policy_estimates(client, gross_margin=gross_margin, catalogue=catalogue)
        if decided
        else [],
        truth=ground_truth(client) if decided else None,
        spend=spend_per_day(client) if decided else [],
        suppressions=suppressions_by_reason(client) if decided else [],
        dead_letters=dead_letters_by_reason(client),
        events=events_by_type(client),
        quality=model_quality.quality_by_day(predictions),
        calibration=model_quality.calibration(predictions),
        over_time=effect_over_time(client, gross_margin) if decided else [],
        fairness=read_fairness(
            client, users, gross_margin=gross_margin, max_ratio=fairness_max_ratio
        )
        if decided
        else None,
    )

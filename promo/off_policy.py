"""Off-policy estimates from the decision logs, computed in ClickHouse: what would another
policy have earned per decision?

``off_policy_estimates`` returns, for a few deterministic target policies (``none``, ``always
<offer>`` for every offer in the logs, the serving choice, and a shadow policy's choice where
one ran), the IPS, SNIPS and DR estimates of the mean reward per decision, for net profit and
for conversion, with 95 % normal intervals. The estimators, their variances and their caveats
are defined in ``streams.off_policy``, whose numpy implementation a test holds this SQL to
(1e-9).

**Rows that enter.** Every decision of the ``decisions`` table (read with ``FINAL``, through
``v_decision_outcomes``), in both arms:

- treated decisions (``control = 0``) with a propensity in (0, 1]: the logging policy's own
  probability of the action it took;
- control decisions (``control = 1``) logged as ``chosen_offer = 'none'`` with propensity 1:
  for them the logging policy is "send nothing", with certainty. They are genuine evidence
  for every target that sends nothing there, and for the others they are rows the logs
  cannot support (``unsupported``: IPS counts 0, DR uses the reward model).

Anything else (a propensity of 0, ``nan`` or above 1; a control decision that claims an
offer) breaks the logging contract and is left out rather than guessed at. The estimand is
thus the mean reward per logged decision point, treated and control together, had the
target acted at each of them. Per-decision estimates treat decisions as independent: contact
caps and users with several decisions make them approximate (``streams.off_policy``).

**Reward** per decision: net profit ``net_fixed + m * rate_base`` as ``v_decision_outcomes``
attributes it (an order's own margin where its lines carried margins, else ``m * (revenue +
discount)``, minus the discount: ``streams.evaluation``'s conventions), or ``converted``
(0/1). **Reward model** of DR: ``streams.off_policy.modelled_reward``, i.e. the logged
``purchase_probs[a]`` times ``m * expected_order_value - cost of a`` (the offer's full
catalogue cost at that order value, as if every buyer redeemed it). It values orders at the
global rate even where carts carried margins (decisions do not log the cart's rate); DR
stays unbiased with any reward model when the propensities are right, only its variance
grows.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from clickhouse_driver import Client

from promo.clickhouse import query
from promo.text_tables import money_ci, pct_ci, table
from schemas.decisions import NO_OFFER
from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec
from streams.evaluation import Estimate
from streams.off_policy import OffPolicyEstimate, TargetPolicy, normal_interval

TITLE = "Off-policy estimates (per decision, descriptive)"
METRICS = ("profit", "conversion")

#: Every offer code that occurs in the logs: scored, chosen or proposed by the policy.
LOGGED_OFFERS_SQL = """
SELECT DISTINCT offer
FROM
(
    SELECT arrayJoin(arrayConcat(score_offers, [chosen_offer, policy_offer])) AS offer
    FROM decisions FINAL
)
WHERE offer != 'none' AND offer != ''
ORDER BY offer
"""

#: Decisions a shadow policy decided beside the serving one.
SHADOWED_SQL = "SELECT countIf(shadow_offer != '') FROM decisions FINAL"

# Runs on ClickHouse 18.16 and current ClickHouse: one JOIN per SELECT with explicit ANY, no
# CTE, no window function. Layers, inside out: one row per decision (reward inputs, logged
# purchase probabilities); x target (its action, the propensity to weight by); x metric
# (reward r, model predictions q for the logged and the target action); per-row terms
# w = 1{a = t} / p and d = q(t) + w (r - q(a)); sums per (target, metric); the estimates.
# Parameters: gross_margin, policy_version ('' = all), target_actions, target_follows
# (1 = the target takes the decision's policy_offer and weighs by propensity 1), target_shadow
# (1 = the target takes its shadow_offer, on the decisions where a shadow ran), offer_codes,
# offer_kinds, offer_values (the catalogue, for the cost of an offer; mirrors OfferSpec.cost).
OFF_POLICY_SQL = """
SELECT
    target_index,
    metric,
    n,
    treated,
    matched,
    unsupported,
    sum_w * sum_w / sum_w_sq AS effective_sample_size,
    sum_u / n AS ips,
    sqrt(greatest(0, (sum_u_sq - sum_u * sum_u / n) / (n - 1)) / n) AS ips_se,
    sum_u / sum_w AS snips,
    sqrt(greatest(0, sum_u_sq - 2 * snips * sum_w_u + snips * snips * sum_w_sq)) / sum_w
        AS snips_se,
    sum_d / n AS dr,
    sqrt(greatest(0, (sum_d_sq - sum_d * sum_d / n) / (n - 1)) / n) AS dr_se
FROM
(
    SELECT
        target_index,
        metric,
        toFloat64(count()) AS n,
        countIf(control = 0) AS treated,
        countIf(w > 0) AS matched,
        countIf(p = 1 AND action != target_action) AS unsupported,
        sum(w) AS sum_w,
        sum(w * w) AS sum_w_sq,
        sum(w * r) AS sum_u,
        sum((w * r) * (w * r)) AS sum_u_sq,
        sum(w * (w * r)) AS sum_w_u,
        sum(d) AS sum_d,
        sum(d * d) AS sum_d_sq
    FROM
    (
        SELECT
            target_index,
            metric,
            control,
            action,
            target_action,
            p,
            if(metric = 'profit', profit, toFloat64(converted)) AS r,
            if(metric = 'profit', prob_logged * (margin_value - cost_logged), prob_logged)
                AS q_logged,
            if(metric = 'profit', prob_target * (margin_value - cost_target), prob_target)
                AS q_target,
            if(action = target_action, 1 / p, 0) AS w,
            q_target + w * (r - q_logged) AS d
        FROM
        (
            SELECT
                *,
                arrayJoin(['profit', 'conversion']) AS metric,
                %(gross_margin)s * order_value AS margin_value,
                if(isNaN(purchase_probs[indexOf(score_offers, action)]), 0,
                   purchase_probs[indexOf(score_offers, action)]) AS prob_logged,
                if(isNaN(purchase_probs[indexOf(score_offers, target_action)]), 0,
                   purchase_probs[indexOf(score_offers, target_action)]) AS prob_target,
                multiIf(
                    kind_logged IN ('percent_off', 'bundle'), order_value * value_logged / 100,
                    kind_logged = 'fixed_off', least(value_logged, order_value),
                    value_logged) AS cost_logged,
                multiIf(
                    kind_target IN ('percent_off', 'bundle'), order_value * value_target / 100,
                    kind_target = 'fixed_off', least(value_target, order_value),
                    value_target) AS cost_target
            FROM
            (
                SELECT
                    *,
                    multiIf(%(target_follows)s[target_index] = 1, policy_offer,
                            %(target_shadow)s[target_index] = 1, shadow_offer,
                            %(target_actions)s[target_index]) AS target_action,
                    if(%(target_follows)s[target_index] = 1, 1, propensity) AS p,
                    %(offer_kinds)s[indexOf(%(offer_codes)s, action)] AS kind_logged,
                    %(offer_values)s[indexOf(%(offer_codes)s, action)] AS value_logged,
                    %(offer_kinds)s[indexOf(%(offer_codes)s, target_action)] AS kind_target,
                    %(offer_values)s[indexOf(%(offer_codes)s, target_action)] AS value_target
                FROM
                (
                    SELECT
                        control,
                        chosen_offer AS action,
                        policy_offer,
                        propensity,
                        converted,
                        net_fixed + %(gross_margin)s * rate_base AS profit,
                        expected_order_value AS order_value,
                        score_offers,
                        purchase_probs,
                        shadow_offer,
                        arrayJoin(arrayEnumerate(%(target_actions)s)) AS target_index
                    FROM v_decision_outcomes
                    ANY LEFT JOIN
                    (
                        SELECT decision_id, score_offers, purchase_probs, shadow_offer
                        FROM decisions FINAL
                    ) AS logged USING decision_id
                    WHERE ((control = 0 AND propensity > 0 AND propensity <= 1)
                           OR (control = 1 AND chosen_offer = 'none' AND propensity = 1))
                      AND (%(policy_version)s = '' OR policy_version = %(policy_version)s)
                )
                -- The shadow's choice is judged where a shadow ran.
                WHERE %(target_shadow)s[target_index] = 0 OR shadow_offer != ''
            )
        )
    )
    GROUP BY target_index, metric
)
ORDER BY target_index, metric
"""


@dataclass(frozen=True, slots=True)
class PolicyEstimates:
    """One target's estimates, for net profit per decision and for conversion per decision.

    ``treated``: how many of the ``n`` rows are treated decisions (the rest are control).
    """

    target: TargetPolicy
    treated: int
    profit: OffPolicyEstimate
    conversion: OffPolicyEstimate


def logged_offers(client: Client) -> list[str]:
    """Every offer code in the decision logs, sorted."""
    return [offer for (offer,) in client.execute(LOGGED_OFFERS_SQL)]


def default_targets(client: Client) -> list[TargetPolicy]:
    """``none``, ``always <offer>`` for every offer in the logs, the serving choice, and the
    shadow's choice if a shadow policy ran."""
    always = [TargetPolicy.always(code) for code in logged_offers(client)]
    ((shadowed,),) = client.execute(SHADOWED_SQL)
    shadow = [TargetPolicy.shadow_choice()] if shadowed else []
    return [TargetPolicy.never(), *always, TargetPolicy.serving_choice(), *shadow]


def off_policy_estimates(
    client: Client,
    *,
    gross_margin: float,
    catalogue: Sequence[OfferSpec] = DEFAULT_CATALOGUE,
    targets: Sequence[TargetPolicy] | None = None,
    policy_version: str | None = None,
    confidence: float = 0.95,
) -> list[PolicyEstimates]:
    """IPS, SNIPS and DR of each target (``default_targets`` when None), in ClickHouse.

    ``catalogue`` prices the offers for DR's reward model; ``policy_version`` restricts the
    logs to decisions of that version (each decision is weighted by its own propensity, so
    pooling versions is sound, but the serving choice then mixes them). No rows: an empty list.
    """
    if not 0 < gross_margin <= 1:
        raise ValueError("gross_margin must be in (0, 1]")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    targets = default_targets(client) if targets is None else list(targets)
    if not targets:
        return []
    params: dict[str, Any] = {
        "gross_margin": float(gross_margin),
        "policy_version": policy_version or "",
        "target_actions": [t.action or "" for t in targets],
        "target_follows": [int(t.follows_serving) for t in targets],
        "target_shadow": [int(t.shadow) for t in targets],
        "offer_codes": [o.code for o in catalogue] or [""],
        "offer_kinds": [o.kind for o in catalogue] or [""],
        "offer_values": [float(o.value) for o in catalogue] or [0.0],
    }
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    by_target: dict[int, dict[str, dict[str, Any]]] = {}
    for r in query(client, OFF_POLICY_SQL, params):
        by_target.setdefault(r["target_index"], {})[r["metric"]] = r
    return [
        PolicyEstimates(
            target=targets[i - 1],
            treated=int(metrics["profit"]["treated"]),
            profit=_estimate(metrics["profit"], z),
            conversion=_estimate(metrics["conversion"], z),
        )
        for i, metrics in sorted(by_target.items())
    ]


def _estimate(r: dict[str, Any], z: float) -> OffPolicyEstimate:
    n = int(r["n"])
    matched = int(r["matched"])

    def estimate(name: str, defined: bool) -> Estimate:
        if not defined:
            return Estimate(math.nan, math.nan, math.nan)
        se = float(r[f"{name}_se"]) if n > 1 else math.nan
        return normal_interval(float(r[name]), se, z)

    return OffPolicyEstimate(
        n=n,
        matched=matched,
        unsupported=int(r["unsupported"]),
        effective_sample_size=float(r["effective_sample_size"]) if matched else 0.0,
        ips=estimate("ips", n > 0),
        snips=estimate("snips", matched > 0),
        dr=estimate("dr", n > 0),
    )


def format_off_policy(estimates: Sequence[PolicyEstimates]) -> str:
    """The report section: one line per target and reward, then what to read into it."""
    if not estimates:
        return f"{TITLE}\n  no decisions yet"
    n, treated = estimates[0].profit.n, estimates[0].treated
    header = ["target", "reward", "IPS [95% CI]", "SNIPS [95% CI]", "DR [95% CI]"]
    header += ["matched", "ESS", "unsupported"]
    rows: list[list[str]] = []
    for e in estimates:
        for reward, value, show in (
            ("net margin", e.profit, money_ci),
            ("conversion", e.conversion, pct_ci),
        ):
            rows.append(
                [
                    e.target.name,
                    reward,
                    show(value.ips),
                    show(value.snips),
                    show(value.dr),
                    str(value.matched),
                    f"{value.effective_sample_size:,.0f}",
                    str(value.unsupported),
                ]
            )
    notes = [
        f"{n} decisions: {treated} treated (weighted by their logged propensity) and "
        f"{n - treated} control (action {NO_OFFER}, propensity 1).",
        "serving choice: the logged policy_offer, the policy's own draw, weighted 1 (not "
        "1/propensity); for control decisions, the offer the policy would have sent.",
        "shadow choice (when a shadow policy ran): what the candidate would have sent, "
        "estimated over the decisions it saw, so its n can be smaller.",
        "unsupported: decisions whose logged action was certain and not the target's: IPS "
        "counts 0 there, DR its reward model (the logged purchase_probs); many of them bias "
        "IPS and SNIPS.",
        "Descriptive: decisions are taken as independent, but contact caps and users with several "
        "decisions make them dependent; the intervals are optimistic.",
    ]
    wrapped = [
        textwrap.fill(note, width=96, initial_indent="  ", subsequent_indent="    ")
        for note in notes
    ]
    return table(TITLE, header, rows) + "\n" + "\n".join(wrapped)

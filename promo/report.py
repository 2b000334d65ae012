"""The evaluation report: what the promotions did, read from the ClickHouse views.

Figures compare treatment with control per user (intention to treat: the headline) and per
decision (needed to break results down by offer, segment and policy version); the maths and
the definitions of
revenue, discount, net margin and ROI are in ``streams.evaluation``. ``build_report`` only
queries and formats; the CLI prints its result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client

from streams.evaluation import (
    Estimate,
    Moments,
    mean_difference,
    mean_interval,
    net_margin_moments,
    promotion_roi,
    proportion_difference,
    relative_uplift,
    wilson_interval,
)

Row = dict[str, Any]

_ARMS = ("treatment", "control")


def build_report(client: Client, *, gross_margin: float) -> str:
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
        users = {
            r["arm"]: _as_units(r)
            for r in _query(client, "SELECT * FROM v_users_treatment_vs_control")
        }
        sections += [
            _arms_section(users, gross_margin, unit="user"),
            _effect_section(users, gross_margin, unit="user"),
            _arms_section(arms, gross_margin),
            _effect_section(arms, gross_margin),
            _breakdown(
                client,
                "v_by_offer",
                "offer",
                "By offer (control: the offer the policy would have sent)",
                gross_margin,
            ),
            _breakdown(client, "v_by_segment", "segment", "By segment", gross_margin),
            _breakdown(
                client, "v_by_policy_version", "policy_version", "By policy version", gross_margin
            ),
        ]
        truth = _ground_truth_section(client)
        if truth:
            sections.append(truth)
    sections += [_dead_letters_section(client), _events_section(client)]
    return "\n\n".join(sections) + "\n"


def _query(client: Client, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
    rows, columns = client.execute(sql, params, with_column_types=True)
    names = [name for name, _ in columns]
    return [dict(zip(names, row, strict=True)) for row in rows]


# --- per-arm figures ---------------------------------------------------------------------------


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


def _as_units(r: Row) -> Row:
    """A row of v_users_treatment_vs_control in the shape of the per-decision rows."""
    return {
        **r,
        "decisions": r["users"],
        "conversions": r["converters"],
        "revenue_per_decision": r["revenue_per_user"],
        "discount_per_decision": r["discount_per_user"],
    }


def _arms_section(arms: dict[str, Row], margin: float, unit: str = "decision") -> str:
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
                _pct_ci(wilson_interval(r["conversions"], r["decisions"])),
                _money_ci(mean_interval(_revenue(r))),
                _money(_discount(r).mean),
                _money_ci(mean_interval(_net(r, margin))),
            ]
        )
    short = "dec." if unit == "decision" else unit
    header = [
        "arm",
        "decisions" if unit == "decision" else "users",
        "users",
        "conversions" if unit == "decision" else "buyers",
        "conversion [CI]",
        f"revenue/{short} [CI]",
        f"discount/{short}",
        f"net margin/{short} [CI]",
    ]
    if unit == "user":
        header.pop(2)
        for row in rows:
            del row[2]
        title = (
            "Treatment vs control per user (every purchase from the user's first decision on, "
            "counted once; [..] = 95% confidence interval)"
        )
    else:
        title = "Treatment vs control (per decision; [..] = 95% confidence interval)"
    return _table(title, header, rows)


def _effect_section(arms: dict[str, Row], margin: float, unit: str = "decision") -> str:
    t, c = arms.get("treatment"), arms.get("control")
    title = f"Effect of the promotion (treatment - control, per {unit})"
    if t is None or c is None:
        return f"{title}\n  needs decisions in both arms"
    conversion = proportion_difference(
        t["conversions"], t["decisions"], c["conversions"], c["decisions"]
    )
    roi = promotion_roi(
        t["revenue_per_decision"],
        t["discount_per_decision"],
        c["revenue_per_decision"],
        c["discount_per_decision"],
        margin,
    )
    rows = [
        ["conversion rate (points)", _points_ci(conversion)],
        [
            "relative conversion uplift",
            _signed_pct(relative_uplift(t["conversion_rate"], c["conversion_rate"])),
        ],
        [f"revenue per {unit}", _difference_ci(mean_difference(_revenue(t), _revenue(c)))],
        [f"discount per {unit}", _difference_ci(mean_difference(_discount(t), _discount(c)))],
        [
            f"net margin per {unit}",
            _difference_ci(mean_difference(_net(t, margin), _net(c, margin))),
        ],
        ["ROI of the promotion", _ratio(roi)],
    ]
    note = (
        "  net margin = margin * (revenue + discount) - discount\n"
        "  ROI = (incremental gross margin - incremental discount) / incremental discount"
    )
    return _table(title, ["measure", "estimate [95% CI]"], rows) + "\n" + note


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
                _pct(t["conversion_rate"]) if t else "",
                _pct(c["conversion_rate"]) if c else "",
                conversion_diff,
                _money(_net(t, margin).mean) if t else "",
                _money(_net(c, margin).mean) if c else "",
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
    return _table(title, header, rows)


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
    ANY INNER JOIN
    (
        SELECT user_id, groupArray(action) AS actions, groupArray(expected_profit) AS profits
        FROM sim_truth FINAL
        WHERE run_id = %(run_id)s
        GROUP BY user_id
    ) USING user_id
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
                _money(r["mean_chosen"]),
                _money(r["mean_policy"]),
                _money(r["mean_none"]),
                _money(r["mean_oracle"]),
                _money(r["mean_policy"] - r["mean_none"]),
                _money(r["mean_oracle"] - r["mean_policy"]),
                _pct(r["policy_is_best"]),
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
    return _table(title, header, rows)


def _pooled(rows: Sequence[Row]) -> Row:
    n = sum(r["decisions"] for r in rows)
    pooled: Row = {"decisions": n}
    for name in ("mean_chosen", "mean_policy", "mean_none", "mean_oracle", "policy_is_best"):
        pooled[name] = sum(r[name] * r["decisions"] for r in rows) / n
    return pooled


def _dead_letters_section(client: Client) -> str:
    rows = client.execute(
        "SELECT reason, count() AS n FROM dead_letters FINAL "
        "GROUP BY reason ORDER BY n DESC, reason"
    )
    if not rows:
        return "Dead letters by reason\n  none"
    return _table(
        "Dead letters by reason", ["reason", "messages"], [[reason, f"{n:,}"] for reason, n in rows]
    )


def _events_section(client: Client) -> str:
    rows = client.execute(
        "SELECT type, count() AS n, uniqExact(user_id) FROM events FINAL "
        "GROUP BY type ORDER BY n DESC, type"
    )
    if not rows:
        return "Events by type\n  none yet"
    return _table(
        "Events by type", ["type", "events", "users"], [[t, f"{n:,}", f"{u:,}"] for t, n, u in rows]
    )


# --- formatting --------------------------------------------------------------------------------


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Fixed-width table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cells[i])) for cells in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = str(cells[0]).ljust(widths[0])
        rest = [str(cell).rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True)]
        return "  " + "  ".join([first, *rest]).rstrip()

    rule = "  " + "  ".join("-" * w for w in widths)
    return "\n".join([title, line(header), rule, *(line(r) for r in rows)])


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2%}"


def _signed_pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.1%}"


def _pct_ci(e: Estimate) -> str:
    if math.isnan(e.low):
        return _pct(e.value)
    return f"{e.value:.2%} [{e.low * 100:.2f}, {e.high * 100:.2f}]"


def _points_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    return f"{e.value * 100:+.2f} [{e.low * 100:+.2f}, {e.high * 100:+.2f}]"


def _money(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.2f}"


def _money_ci(e: Estimate) -> str:
    if math.isnan(e.low):
        return _money(e.value)
    return f"{e.value:,.2f} [{e.low:,.2f}, {e.high:,.2f}]"


def _difference_ci(e: Estimate) -> str:
    if math.isnan(e.value):
        return "n/a"
    if math.isnan(e.low):
        return f"{e.value:+,.2f}"
    return f"{e.value:+,.2f} [{e.low:+,.2f}, {e.high:+,.2f}]"


def _ratio(x: float) -> str:
    return "n/a (no extra discount given)" if math.isnan(x) else f"{x:+.2f}"

"""``promo evaluate``: several policies on the same simulated population, against the truth.

Every policy plays the same shop (same population, same seed: common random numbers, see
``simulator.closed_loop``) through the engine's own decision code, with the same control
group, after the same warm-up (``warmup_days`` of history in which the engine decides
nothing, as a shop has before it starts: the analysts' pre-period). For each policy:

- ``true_incremental_profit``: realised profit under the policy minus realised profit of the
  *same users* when nothing is ever sent, summed over users, with a 95 % interval from the
  per-user paired differences (they differ only where an offer reached someone);
- ``sql_estimate``: what an analyst reads from the policy's own logs with no access to the
  truth: the run's decisions, outcomes and purchases loaded into ClickHouse, and the
  report's per-user treatment-vs-control difference in net profit (intention to treat,
  CUPED where a pre-period exists) scaled to the treated users, with its 95 % interval;
- offers sent, discount spent, decisions, explored share;
- ``by_response_type``: the same truth split by the simulator's response types (users,
  true incremental profit, offers sent), to see where a policy earns and where it loses
  (e.g. sure things paid a discount, sleeping dogs contacted), which no shop can see;
- ``by_period``: the same truth per period of the deciding days (``period_days``), and the
  offers the policy served with their logged purchase probability against the share that
  bought (a check of the learner's confidence that needs no truth).
"""

from __future__ import annotations

import math
import multiprocessing
import queue
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import orjson

from schemas.decisions import NO_OFFER
from schemas.outcomes import OutcomeType
from simulator.closed_loop import LoopResult, play
from simulator.policies import (
    DIAGNOSTIC_NAMES,
    POLICY_NAMES,
    UNGATED,
    VARIANT_NAMES,
    ActionValues,
    CellOraclePolicy,
    ObservableOraclePolicy,
    OraclePolicy,
    PropensityPolicy,
    RandomPolicy,
)
from simulator.population import Population, ResponseType, build_population
from simulator.shop import DAY_MS, Shop
from streams.abuse import OFF as ABUSE_OFF
from streams.engine import DecisionEngine, EngineConfig, Policy
from streams.models import ModelSnapshot
from streams.policy import in_control_group, in_explore_cohort
from streams.uplift import cell_of

#: Sim start: a Monday 00:00 UTC, so runs line up on the daily cycle whatever the date.
START_MS = 1_700_438_400_000
Z95 = NormalDist().inv_cdf(0.975)


@dataclass(frozen=True)
class EvaluationConfig:
    engine: EngineConfig
    users: int = 20_000
    days: float = 14.0
    warmup_days: float = 7.0
    seed: int = 101
    policies: tuple[str, ...] = POLICY_NAMES
    n_segments: int = 6
    model_seed: int = 42
    workers: int = 2
    #: Share of coupon hunters, and other users' use of public codes (``build_population``).
    coupon_hunters: float = 0.0
    casual_code_use: float = 0.0
    #: Categories bought together in pairs (``build_population``): what bundle rules find.
    complements: bool = False
    #: How complement bundles' rules are counted (``PROMO_RULES_DAYS``, ``_MIN_ORDERS``).
    rules_days: float = 30.0
    rules_min_orders: int = 20
    #: The truth is also split into periods of this many days of the deciding time
    #: (``by_period``): a learner's first week and its later ones are different stories.
    period_days: float = 7.0

    def __post_init__(self) -> None:
        known = POLICY_NAMES + VARIANT_NAMES + DIAGNOSTIC_NAMES
        unknown = set(self.policies) - set(known)
        if unknown:
            raise ValueError(f"unknown policies {sorted(unknown)}; known: {known}")
        if not (0.0 <= self.coupon_hunters < 1.0 and 0.0 <= self.casual_code_use <= 1.0):
            raise ValueError("--coupon-hunters must be in [0, 1) and --casual-code-use in [0, 1]")
        if self.users < 10 or self.days <= 0 or self.warmup_days < 0:
            raise ValueError(
                "evaluate needs at least 10 users, a positive number of days and a warm-up >= 0"
            )
        if not self.period_days >= 1 / 24:
            raise ValueError("--period-days must be at least an hour (1/24)")


#: Reads an analyst's estimate for one policy's run from its logs (``promo evaluate`` loads
#: them into ClickHouse and runs the report's SQL).
SqlEstimate = Callable[[str, LoopResult], dict[str, Any]]


def simulated_hours(config: EvaluationConfig) -> float:
    """The total ``evaluate`` tells ``on_progress``: the simulated hours (warm-up and days) of
    every policy's run. The no-offer world's run, several times faster without an engine,
    counts only when it is the only one: counted, it made the rate jump and the time left
    read zero halfway."""
    runs = len([name for name in config.policies if name != "none"]) or 1
    return runs * (config.warmup_days + config.days) * 24


def evaluate(
    config: EvaluationConfig,
    sql_estimate: SqlEstimate | None = None,
    on_progress: Callable[[float], object] | None = None,
    decisions_dir: Path | None = None,
) -> dict[str, Any]:
    """Run every policy and the no-offer world; the JSON-ready summary. ``on_progress`` is
    told the simulated hours each run played, hour by hour, whichever worker process plays
    it (``simulated_hours`` in all). ``decisions_dir``: where each policy's decisions are
    written, one JSON line each (``decision_rows``), as ``<policy>.jsonl``."""
    population = _population(config)
    names = [name for name in config.policies if name != "none"]
    if decisions_dir is not None:  # before the runs: a path that cannot be a folder fails now
        decisions_dir.mkdir(parents=True, exist_ok=True)
    hours: multiprocessing.Queue[float] | None = (
        multiprocessing.Queue() if on_progress is not None else None
    )
    with ProcessPoolExecutor(
        max_workers=max(1, config.workers), initializer=_report_to, initargs=(hours,)
    ) as pool:
        # The no-offer world is one more run beside the policies: every truth subtracts it.
        futures = [
            pool.submit(_run_policy, config, name, told=name != "none" or not names)
            for name in ["none", *names]
        ]
        if hours is not None and on_progress is not None:
            _relay(hours, futures, on_progress)
        baseline, *runs = [future.result() for future in futures]
    cfg = config.engine
    ids = [u.user_id for u in population.users]
    control = np.array(
        [in_control_group(u, salt=cfg.holdout_salt, share=cfg.control_share) for u in ids]
    )
    explore = ~control & np.array(
        [in_explore_cohort(u, salt=cfg.holdout_salt, share=cfg.explore_share) for u in ids]
    )
    types = np.array([u.response_type.value for u in population.users])
    hunters = types == ResponseType.COUPON_HUNTER.value
    type_of = dict(zip(ids, types.tolist(), strict=True))
    policies = {}
    if "none" in config.policies:
        policies["none"] = summarise(baseline, baseline, control)
    for name, run in zip(names, runs, strict=True):
        policies[name] = summarise(run, baseline, control)
        policies[name]["by_response_type"] = by_response_type(run, baseline, ids, types)
        if hunters.any():
            policies[name]["coupon_hunters"] = _hunters_summary(run, baseline, ids, hunters)
        if sql_estimate is not None:
            policies[name]["sql_estimate"] = sql_estimate(name, run)
        policies[name]["by_period"] = by_period(run, baseline, config)
        if decisions_dir is not None:
            with (decisions_dir / f"{name}.jsonl").open("wb") as out:
                out.writelines(orjson.dumps(row) + b"\n" for row in decision_rows(run, type_of))
        if name in ("learned", "learned_ungated"):
            diff = run.profits - baseline.profits
            policies[name]["true_incremental_profit_explore_cohort"] = round(
                float(diff[explore].sum()), 2
            )
    return {
        "users": config.users,
        "days": config.days,
        "warmup_days": config.warmup_days,
        "seed": config.seed,
        "control_share": config.engine.control_share,
        "policy_version": config.engine.policy_version,
        "abuse_threshold": config.engine.abuse_threshold,
        "coupon_hunters": int(hunters.sum()),
        "casual_code_use": config.casual_code_use,
        "baseline_profit": round(float(baseline.profits.sum()), 2),
        "events_per_run": baseline.events,
        "policies": policies,
    }


def _play_args(config: EvaluationConfig) -> dict[str, Any]:
    return {
        "seed": config.seed,
        "days": config.warmup_days + config.days,
        "warmup_days": config.warmup_days,
        "start_ms": START_MS,
        "gross_margin": config.engine.gross_margin,
        "marks_ms": period_marks(config),
        "rules_days": config.rules_days,
        "rules_min_orders": config.rules_min_orders,
    }


def period_marks(config: EvaluationConfig) -> list[int]:
    """Where the deciding time's periods start and end: its start, every ``period_days``,
    and its end (the last period may be shorter).

    >>> config = EvaluationConfig(engine=None, days=10.0, warmup_days=1.0)  # type: ignore[arg-type]
    >>> [(m - START_MS) / DAY_MS for m in period_marks(config)]
    [1.0, 8.0, 11.0]
    """
    start = START_MS + round(config.warmup_days * DAY_MS)
    end = START_MS + round((config.warmup_days + config.days) * DAY_MS)
    step = round(config.period_days * DAY_MS)
    return [*range(start, end, step), end]


#: In a worker process: where its runs tell their simulated hours (``None``: nobody asked).
_progress: multiprocessing.Queue[float] | None = None


def _report_to(hours: multiprocessing.Queue[float] | None) -> None:
    global _progress
    _progress = hours


def _relay(
    hours: multiprocessing.Queue[float],
    futures: Sequence[Future[LoopResult]],
    on_progress: Callable[[float], object],
) -> None:
    """Pass the workers' simulated hours on until every run is done (in this thread: no
    thread of ours may exist when the pool forks its workers)."""
    while True:
        done = all(future.done() for future in futures)
        try:
            on_progress(hours.get(timeout=0.05 if done else 0.2))
        except queue.Empty:
            if done:
                return


def _run_policy(config: EvaluationConfig, name: str, told: bool = False) -> LoopResult:
    """One policy's run (``none``: the shop alone, no engine, no offers); ``told``: its
    simulated hours go to the progress queue, if any."""
    population = _population(config)
    engine_for = None if name == "none" else engine_factory(config, population, name)
    on_progress = _progress.put if _progress is not None and told else None
    return play(population, engine_for, on_progress=on_progress, **_play_args(config))


def _population(config: EvaluationConfig) -> Population:
    return build_population(
        config.users,
        config.seed,
        coupon_hunters=config.coupon_hunters,
        casual_code_use=config.casual_code_use,
        complements=config.complements,
    )


def engine_factory(
    config: EvaluationConfig, population: Population, name: str
) -> Callable[[Shop], DecisionEngine]:
    cfg = config.engine
    actions = cfg.actions
    values = ActionValues(
        cfg.catalogue,
        cfg.attribution_window_ms / 3_600_000,
        cfg.offer_ttl_ms / 3_600_000,
        cfg.gross_margin,
        population.assortment.categories,
    )

    base, ungated = name.removesuffix(UNGATED), name.endswith(UNGATED)

    def build(shop: Shop) -> DecisionEngine:
        policy: Policy | None = None
        engine_config = replace(cfg, budget_partitions=1)  # one loop holds the whole budget
        if ungated:
            engine_config = replace(engine_config, abuse_threshold=ABUSE_OFF)
        if base == "random":
            policy = RandomPolicy(actions)
        elif base == "propensity":
            policy = PropensityPolicy(cfg.catalogue[0].code)
        elif base == "oracle":
            policy = OraclePolicy(population, values)
        elif base == "cell_oracle":
            policy = CellOraclePolicy(population, values)
        elif base == "observable_oracle":
            policy = ObservableOraclePolicy(population, shop, values)
        if policy is not None:
            engine_config = replace(engine_config, explore_share=0.0)
        snapshot = ModelSnapshot.initial(actions, config.n_segments, config.model_seed)
        return DecisionEngine(engine_config, snapshot, policy)

    return build


def summarise(run: LoopResult, baseline: LoopResult, control: np.ndarray) -> dict[str, Any]:
    """The truth for one policy run (see the module docstring); control users' paired
    difference is 0 by construction (no offer reaches them, unless they are coupon hunters
    whose ring mates received one), so the total is the treated's."""
    diff = run.profits - baseline.profits
    offers = [d for d in run.decisions if d.chosen_offer != NO_OFFER]
    explored = sum(1 for d in run.decisions if not d.control and d.propensity < 1.0)
    return {
        "true_incremental_profit": _total(diff),
        "true_incremental_profit_per_user": round(float(diff.mean()), 4),
        "true_incremental_profit_per_treated_user": round(float(diff[~control].mean()), 4),
        "offers_sent": len(offers),
        "offers_by_code": dict(sorted(Counter(d.chosen_offer for d in offers).items())),
        "budget_spent": round(float(run.discounts.sum()), 2),
        "decisions": len(run.decisions),
        "explored_decisions": explored,
        "suppressions_by_reason": dict(sorted(run.suppressions.items())),
        "expected_discount_withheld_by_reason": {
            reason: round(cost, 2) for reason, cost in sorted(run.withheld_cost.items()) if cost
        },
        "expected_discount_committed_by_day": run.committed_by_day,
        "model_version": run.model_version,
    }


def by_period(
    run: LoopResult, baseline: LoopResult, config: EvaluationConfig
) -> list[dict[str, Any]]:
    """The run's truth per period of the deciding time (``period_marks``): the paired
    difference of the profit each user realised within the period, with its interval, and
    the offers sent in it. The periods add up to the whole run's truth: the warm-up has no
    offers, so its profits are the same under every policy.

    And a check that needs no truth: the offers the policy *served* (not explored, not
    withheld) in the period, the purchase probability it logged for them on average, and
    the share of them whose window saw a purchase. A learner whose first is far above the
    second overrates its offers (``served``; absent for policies that log no probabilities).
    """
    marks = period_marks(config)
    diffs = [a - b for a, b in zip(run.profits_at, baseline.profits_at, strict=True)]
    offers = np.array([d.ts for d in run.decisions if d.chosen_offer != NO_OFFER], dtype=np.int64)
    bought = {o.decision_id for o in run.outcomes if o.type is OutcomeType.PURCHASE}
    served = [
        (d.ts, d.purchase_probs[d.chosen_offer], d.decision_id in bought)
        for d in run.decisions
        if d.chosen_offer != NO_OFFER and d.propensity == 1.0 and d.chosen_offer in d.purchase_probs
    ]
    periods = []
    for start, end, before, after in zip(marks, marks[1:], diffs, diffs[1:], strict=False):
        period: dict[str, Any] = {
            "from_day": round((start - marks[0]) / DAY_MS, 3),
            "to_day": round((end - marks[0]) / DAY_MS, 3),
            "true_incremental_profit": _total(after - before),
            "offers_sent": int(((offers >= start) & (offers < end)).sum()),
        }
        inside = [(p, b) for ts, p, b in served if start <= ts < end]
        if inside:
            period["served"] = {
                "offers": len(inside),
                "predicted_conversion": round(sum(p for p, _ in inside) / len(inside), 4),
                "realised_conversion": round(sum(b for _, b in inside) / len(inside), 4),
            }
        periods.append(period)
    return periods


def decision_rows(run: LoopResult, type_of: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """Each decision of a run as a diagnosis reads it: the cell the uplift model put it in,
    what the policy chose and expected, what happened in its window, and the user's true
    response type (``type_of`` a user id), which no shop knows. Where a policy earns or
    loses shows here decision by decision: such dumps found the baseline error v7 fixed and
    the users the observable oracle earns from (README, "Judging policies")."""
    seen: dict[str, set[OutcomeType]] = {}
    for outcome in run.outcomes:
        seen.setdefault(outcome.decision_id, set()).add(outcome.type)
    for d in run.decisions:
        happened = seen.get(d.decision_id, set())
        yield {
            "decision_id": d.decision_id,
            "ts": d.ts,
            "user_id": d.user_id,
            "response_type": type_of[d.user_id],
            "trigger": d.trigger,
            "cell": cell_of(d.features, d.trigger),
            "control": d.control,
            "policy_offer": d.policy_offer,
            "chosen_offer": d.chosen_offer,
            "target_category": d.target_category,
            "interest_category": d.interest_category,
            "propensity": d.propensity,
            "purchase_probs": d.purchase_probs,
            "scores": d.scores,
            "expected_order_value": d.expected_order_value,
            "shown": OutcomeType.SHOWN in happened,
            "clicked": OutcomeType.CLICKED in happened,
            "purchased": OutcomeType.PURCHASE in happened,
            "redeemed": OutcomeType.REDEEMED in happened,
        }


def by_response_type(
    run: LoopResult, baseline: LoopResult, ids: list[str], types: np.ndarray
) -> dict[str, dict[str, float]]:
    """The run's truth per response type: users, their paired difference summed, and the
    offers they were sent (``ids`` and ``types``, the types' values, in population order)."""
    diff = run.profits - baseline.profits
    kind_of = dict(zip(ids, types.tolist(), strict=True))
    offers = Counter(kind_of[d.user_id] for d in run.decisions if d.chosen_offer != NO_OFFER)
    masks = {kind: types == kind for kind in sorted(set(types.tolist()))}
    return {
        kind: {
            "users": int(mask.sum()),
            "true_incremental_profit": round(float(diff[mask].sum()), 2),
            "offers_sent": offers[kind],
        }
        for kind, mask in masks.items()
    }


def _hunters_summary(
    run: LoopResult, baseline: LoopResult, ids: list[str], hunters: np.ndarray
) -> dict[str, Any]:
    """What the policy did to the coupon hunters, by the truth, and whom its abuse gate
    stopped (decision points gated on hunters and on everyone else: false positives)."""
    hunter_ids = {user_id for user_id, hunter in zip(ids, hunters, strict=True) if hunter}
    gated = run.gated_users
    return {
        "true_incremental_profit": round(float((run.profits - baseline.profits)[hunters].sum()), 2),
        "offers_sent": sum(
            1 for d in run.decisions if d.chosen_offer != NO_OFFER and d.user_id in hunter_ids
        ),
        "gated_decisions_on_hunters": sum(n for u, n in gated.items() if u in hunter_ids),
        "gated_decisions_on_others": sum(n for u, n in gated.items() if u not in hunter_ids),
        "gated_users_hunters": sum(1 for u in gated if u in hunter_ids),
        "gated_users_others": sum(1 for u in gated if u not in hunter_ids),
    }


def _total(diff: np.ndarray) -> dict[str, float]:
    n = len(diff)
    total = float(diff.sum())
    half = Z95 * float(diff.std(ddof=1)) * math.sqrt(n) if n > 1 else float("nan")
    return {"value": round(total, 2), "low": round(total - half, 2), "high": round(total + half, 2)}


def format_summary(result: dict[str, Any]) -> str:
    """A few lines per policy for the terminal (``--json`` prints everything)."""
    users = result["users"]
    lines = [
        f"promo evaluate: {users:,} users, {result['days']:g} days after "
        f"{result['warmup_days']:g} of history, seed {result['seed']}, "
        f"control share {result['control_share']:.0%}, {result['events_per_run']:,} events",
        "true = realised profit minus the same users' profit with no offers (common random "
        "numbers); estimate = what the report reads from the policy's logs in ClickHouse",
        "",
        f"  {'policy':<18} {'true incremental profit [95% CI]':>36} {'per user':>9} "
        f"{'SQL estimate [95% CI]':>34} {'offers':>7} {'discount':>9}",
    ]
    for name, p in result["policies"].items():
        true = p["true_incremental_profit"]
        sql = p.get("sql_estimate") or {}
        estimate = (
            f"{sql['value']:,.0f} [{sql['low']:,.0f}, {sql['high']:,.0f}]"
            if sql.get("value") is not None
            else "-"
        )
        lines.append(
            f"  {name:<18} {true['value']:>14,.0f} [{true['low']:>9,.0f}, {true['high']:>9,.0f}] "
            f"{p['true_incremental_profit_per_user']:>9.3f} {estimate:>34} "
            f"{p['offers_sent']:>7,} {p['budget_spent']:>9,.0f}"
        )
    periods: list[dict[str, Any]] = next(
        (p["by_period"] for p in result["policies"].values() if "by_period" in p), []
    )
    if len(periods) > 1:
        lines += [
            "",
            "true incremental profit per user by period of the deciding days (offers sent); "
            "served: the offers served, their logged purchase probability / the share that bought",
        ]
        spans = (f"days {q['from_day']:g}-{q['to_day']:g}" for q in periods)
        lines.append(f"  {'policy':<18} " + " ".join(f"{span:>17}" for span in spans))
        for name, p in result["policies"].items():
            figures = [
                f"{q['true_incremental_profit']['value'] / users:>+8.3f} ({q['offers_sent']:>6,})"
                for q in p.get("by_period", [])
            ]
            if figures:
                lines.append(f"  {name:<18} " + " ".join(figures))
            served = [q.get("served") for q in p.get("by_period", [])]
            if any(served):
                lines.append(
                    f"  {'  served: p / buy':<18} "
                    + " ".join(
                        f"{s['predicted_conversion']:>8.3f} / {s['realised_conversion']:<6.3f}"
                        if s
                        else f"{'-':>17}"
                        for s in served
                    )
                )
    kinds = sorted({k for p in result["policies"].values() for k in p.get("by_response_type", {})})
    if kinds:
        lines += ["", "true incremental profit by response type (offers sent):"]
        lines.append(f"  {'policy':<18} " + " ".join(f"{k:>22}" for k in kinds))
        for name, p in result["policies"].items():
            parts = p.get("by_response_type", {})
            cells = (
                f"{parts[k]['true_incremental_profit']:>12,.0f} ({parts[k]['offers_sent']:>6,})"
                if k in parts
                else f"{'-':>22}"
                for k in kinds
            )
            lines.append(f"  {name:<18} " + " ".join(cells))
    return "\n".join(lines)

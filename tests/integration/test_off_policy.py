"""Off-policy estimates in ClickHouse SQL against the numpy reference, to 1e-9.

A few hundred synthetic decisions with random propensities, several offers (every catalogue
kind, plus an offer no longer in the catalogue), control decisions, actions the model did
not score, rows that break the logging contract (left out), and at-least-once copies: every
table gets redelivered duplicates, and some decisions a replay decided again with a newer
model (same ids, other probabilities and action), which FINAL must resolve to the last copy.
The reference rebuilds each decision's reward from the outcome records in Python, then runs
``streams.off_policy.estimate_policy_value``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from clickhouse_driver import Client

from promo.clickhouse import insert
from promo.off_policy import (
    TITLE,
    PolicyEstimates,
    default_targets,
    format_off_policy,
    off_policy_estimates,
)
from schemas.decisions import NO_OFFER, Decision
from schemas.outcomes import Outcome, OutcomeType
from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec
from streams.evaluation import Estimate
from streams.off_policy import (
    OffPolicyEstimate,
    TargetPolicy,
    estimate_policy_value,
    modelled_reward,
    net_profit,
)
from streams.sink_rows import DECISION_COLUMNS, OUTCOME_COLUMNS, decision_row, outcome_row

TS = 1_700_000_000_000
HOUR = 3_600_000
MARGIN = 0.35
CATALOGUE = (*DEFAULT_CATALOGUE, OfferSpec("five_off", "fixed_off", 5.0, "5 off", "F5"))
RETIRED = "retired20"  # logged, but no longer in the catalogue: costs 0 in the reward model
LOGGED = (NO_OFFER, *(o.code for o in CATALOGUE), RETIRED)


def _decision(rng: np.random.Generator, i: int, version: int = 1) -> Decision:
    """One logged decision: a random logging distribution over the actions, then its draw."""
    control = rng.random() < 0.2
    served = rng.random() < 0.3  # a served decision: the action was certain
    probs = rng.dirichlet(np.ones(len(LOGGED)))
    draw = str(rng.choice(LOGGED, p=probs))
    propensity = 1.0 if served else float(probs[LOGGED.index(draw)])
    purchase = {a: round(float(rng.uniform(0.01, 0.4)), 6) for a in LOGGED}
    scores = dict.fromkeys(purchase, 0.0)
    if rng.random() < 0.15:
        del purchase["bundle15"]  # scored but no probability: nan in the table, 0 in q
    if rng.random() < 0.15:
        del purchase["pct20"], scores["pct20"]  # not scored at all
    return Decision(
        decision_id=f"de-{i:024d}",
        user_id=f"u{i % 97}",
        ts=TS + i * 60_000,
        trigger_event_id=f"ev-{i}",
        trigger="view",
        segment=i % 3,
        control=control,
        chosen_offer=NO_OFFER if control else draw,
        policy_offer=draw,
        propensity=1.0 if control else propensity,
        scores=scores,
        purchase_probs=purchase,
        features=(1.0, 2.0),
        expected_order_value=round(float(rng.uniform(3.0, 150.0)), 2),
        offer_id=None,
        expires_at=TS + i * 60_000 + 48 * HOUR,
        policy_version="test-v1",
        model_version=version,
    )


def _outcomes(rng: np.random.Generator, d: Decision) -> list[Outcome]:
    records: list[tuple[OutcomeType, float, float]] = []
    if rng.random() < 0.5:
        records.append((OutcomeType.SHOWN, 0.0, 0.0))
    purchases = int(rng.choice([0, 0, 1, 2]))
    for _ in range(purchases):
        total = round(float(rng.uniform(5.0, 200.0)), 2)
        coupon = d.chosen_offer != NO_OFFER and rng.random() < 0.7
        discount = round(total * 0.1, 2) if coupon else 0.0
        records.append((OutcomeType.PURCHASE, total, discount))
        if coupon:  # repeats its purchase's figures: the views must not count them twice
            records.append((OutcomeType.REDEEMED, total, discount))
    if not purchases:
        records.append((OutcomeType.NO_CONVERSION, 0.0, 0.0))
    return [
        Outcome(
            outcome_id=f"oc-{d.decision_id}-{k}",
            decision_id=d.decision_id,
            user_id=d.user_id,
            ts=d.ts + HOUR,
            type=kind,
            source_event_id=f"src-{d.decision_id}-{k}",
            offer_code=d.chosen_offer,
            control=d.control,
            order_total=total,
            discount=discount,
        )
        for k, (kind, total, discount) in enumerate(records)
    ]


def _shadow(i: int, d: Decision) -> str:
    return NO_OFFER if i % 5 == 0 else d.policy_offer


def _dataset(seed: int) -> tuple[list[list[Decision]], list[list[Outcome]]]:
    """Insert batches (in order) of decisions and outcomes, with copies and replays."""
    rng = np.random.default_rng(seed)
    decisions = [_decision(rng, i) for i in range(300)]
    decisions[5] = replace(decisions[5], control=True, chosen_offer="pct10")  # breaks contract
    decisions[6] = replace(decisions[6], control=False, propensity=0.0)  # breaks contract
    # A shadow policy ran on two decisions in three: the serving draw, or none every fifth.
    decisions = [
        replace(d, shadow_policy="shadow-v1", shadow_offer=_shadow(i, d)) if i % 3 else d
        for i, d in enumerate(decisions)
    ]
    outcomes = [o for d in decisions for o in _outcomes(rng, d)]
    # A replay after a model update: same decision ids, decided again; the later copy wins.
    replays = [
        replace(_decision(rng, i, version=2), control=decisions[i].control)
        for i in range(10, 300, 29)
    ]
    replays = [
        replace(d, chosen_offer=NO_OFFER, propensity=1.0) if d.control else d for d in replays
    ]
    redelivered_decisions = [d for i, d in enumerate(decisions) if i % 7 == 0]
    redelivered_outcomes = [o for i, o in enumerate(outcomes) if i % 5 == 0]
    return (
        [decisions, redelivered_decisions, replays],
        [outcomes, redelivered_outcomes],
    )


def _reference(
    decision_batches: list[list[Decision]],
    outcome_batches: list[list[Outcome]],
    targets: list[TargetPolicy],
) -> list[tuple[int, OffPolicyEstimate, OffPolicyEstimate]]:
    """(treated rows, profit estimate, conversion estimate) per target, from the records."""
    latest = {d.decision_id: d for batch in decision_batches for d in batch}
    unique = {(o.decision_id, o.outcome_id): o for batch in outcome_batches for o in batch}
    revenue: dict[str, float] = {}
    discount: dict[str, float] = {}
    for o in unique.values():
        if o.type is OutcomeType.PURCHASE:
            revenue[o.decision_id] = revenue.get(o.decision_id, 0.0) + o.order_total
            discount[o.decision_id] = discount.get(o.decision_id, 0.0) + o.discount
    rows = [
        d
        for d in latest.values()
        if (not d.control and 0 < d.propensity <= 1)
        or (d.control and d.chosen_offer == NO_OFFER and d.propensity == 1)
    ]
    profit = [
        net_profit(revenue.get(d.decision_id, 0.0), discount.get(d.decision_id, 0.0), MARGIN)
        for d in rows
    ]
    converted = [float(d.decision_id in revenue) for d in rows]
    logged = [d.chosen_offer for d in rows]

    def q(action: str, d: Decision) -> tuple[float, float]:
        return modelled_reward(
            action,
            d.purchase_probs,
            d.expected_order_value,
            catalogue=CATALOGUE,
            gross_margin=MARGIN,
        )

    q_logged = [q(d.chosen_offer, d) for d in rows]
    result = []
    for target in targets:
        keep = [i for i, d in enumerate(rows) if target.applies_to(d.shadow_offer)]
        kept = [rows[i] for i in keep]
        actions = [target.action_for(d.policy_offer, d.shadow_offer) for d in kept]
        p = [target.propensity_for(d.propensity) for d in kept]
        q_target = [q(a, d) for a, d in zip(actions, kept, strict=True)]
        profit_estimate, conversion_estimate = (
            estimate_policy_value(
                [rewards[i] for i in keep],
                p,
                [logged[i] for i in keep],
                actions,
                [q_logged[i][m] for i in keep],
                [x[m] for x in q_target],
            )
            for m, rewards in ((0, profit), (1, converted))
        )
        treated = sum(1 for d in kept if not d.control)
        result.append((treated, profit_estimate, conversion_estimate))
    return result


def _load(client: Client, seed: int) -> tuple[list[list[Decision]], list[list[Outcome]]]:
    decision_batches, outcome_batches = _dataset(seed)
    for batch in decision_batches:  # one insert each: the copies land in separate parts
        insert(client, "decisions", DECISION_COLUMNS, [decision_row(d) for d in batch])
    for outcome_batch in outcome_batches:
        insert(client, "outcomes", OUTCOME_COLUMNS, [outcome_row(o) for o in outcome_batch])
    return decision_batches, outcome_batches


def _assert_close(actual: float, expected: float, what: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), what
        return
    assert abs(actual - expected) <= 1e-9, f"{what}: {actual!r} != {expected!r} (absolute)"
    assert abs(actual - expected) <= 1e-9 * abs(expected), f"{what}: {actual!r} (relative)"


def _assert_same(actual: OffPolicyEstimate, expected: OffPolicyEstimate, what: str) -> None:
    assert (actual.n, actual.matched, actual.unsupported) == (
        expected.n,
        expected.matched,
        expected.unsupported,
    ), what
    _assert_close(actual.effective_sample_size, expected.effective_sample_size, f"{what} ESS")
    for name in ("ips", "snips", "dr"):
        a: Estimate = getattr(actual, name)
        e: Estimate = getattr(expected, name)
        for bound in ("value", "low", "high"):
            _assert_close(getattr(a, bound), getattr(e, bound), f"{what} {name}.{bound}")


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_estimates_match_numpy(migrated: Client, seed: int) -> None:
    decision_batches, outcome_batches = _load(migrated, seed)
    targets = default_targets(migrated)
    assert [t.name for t in targets] == [
        "none",
        *(f"always {code}" for code in sorted([*(o.code for o in CATALOGUE), RETIRED])),
        "serving choice",
        "shadow choice",
    ]

    estimates = off_policy_estimates(migrated, gross_margin=MARGIN, catalogue=CATALOGUE)

    expected = _reference(decision_batches, outcome_batches, targets)
    assert [e.target for e in estimates] == targets
    for got, (treated, profit, conversion) in zip(estimates, expected, strict=True):
        assert got.treated == treated
        _assert_same(got.profit, profit, f"{got.target.name} profit")
        _assert_same(got.conversion, conversion, f"{got.target.name} conversion")
    # The data exercise what they should: copies exist, rows were left out, support varies.
    n_rows = estimates[0].profit.n
    assert n_rows == 298
    assert 0 < estimates[0].treated < n_rows
    assert all(0 < e.profit.matched < n_rows for e in estimates)
    assert all(e.profit.unsupported > 0 for e in estimates)
    assert 0 < estimates[-1].profit.n < n_rows  # the shadow's: only where it ran


def test_policy_version_and_explicit_targets(migrated: Client) -> None:
    decision_batches, outcome_batches = _load(migrated, 3)
    targets = [TargetPolicy.always("pct10"), TargetPolicy.serving_choice()]

    estimates = off_policy_estimates(
        migrated, gross_margin=MARGIN, catalogue=CATALOGUE, targets=targets
    )
    other = off_policy_estimates(
        migrated, gross_margin=MARGIN, catalogue=CATALOGUE, targets=targets, policy_version="v9"
    )

    expected = _reference(decision_batches, outcome_batches, targets)
    for got, (_, profit, _) in zip(estimates, expected, strict=True):
        _assert_same(got.profit, profit, got.target.name)
    assert other == []


def test_report_section(migrated: Client) -> None:
    assert format_off_policy(off_policy_estimates(migrated, gross_margin=MARGIN)) == (
        f"{TITLE}\n  no decisions yet"
    )
    _load(migrated, 4)
    estimates: list[PolicyEstimates] = off_policy_estimates(
        migrated, gross_margin=MARGIN, catalogue=CATALOGUE
    )

    section = format_off_policy(estimates)

    lines = section.splitlines()
    assert lines[0] == TITLE
    assert lines[1].split()[:2] == ["target", "reward"]
    rows = [line.split("  ")[1].strip() for line in lines[3 : 3 + 2 * len(estimates)]]
    assert rows == [e.target.name for e in estimates for _ in ("profit", "conversion")]
    assert lines[3].startswith("  none") and "net margin" in lines[3]
    assert f"{estimates[0].profit.n} decisions" in section
    assert "independent" in section

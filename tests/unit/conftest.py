from __future__ import annotations

import pytest

from schemas.decisions import NO_OFFER
from streams.catalogue import DEFAULT_CATALOGUE
from streams.engine import TRIGGERS, DecisionContext, DecisionEngine, EngineConfig, Policy
from streams.models import ModelSnapshot
from streams.policy import Choice, ContactLimits

HOUR = 3_600_000


class FixedOffer:
    """A stand-in policy for the engine's mechanics: always ``action``, logged as explored."""

    def __init__(self, action: str = "pct10", propensity: float = 0.5) -> None:
        self.action, self.propensity = action, propensity

    def choose(self, context: DecisionContext) -> Choice:
        probs = {"none": 0.1, self.action: 0.2}
        scores = {"none": 0.0, self.action: 1.0}
        return Choice(self.action, self.propensity, scores, probs, explored=True)


def make_engine(policy: Policy | None = None, **overrides: object) -> DecisionEngine:
    fields: dict[str, object] = dict(
        catalogue=DEFAULT_CATALOGUE,
        policy_version="test-v1",
        control_share=0.0,
        holdout_salt="salt",
        explore_share=0.0,
        confidence_z=0.84,
        gross_margin=0.3,
        attribution_window_ms=48 * HOUR,
        offer_ttl_ms=48 * HOUR,
        decision_lateness_ms=10 * 60_000,
        abandon_after_ms=30 * 60_000,
        limits=ContactLimits(cooldown_ms=HOUR, max_per_day=1, max_per_week=3),
        triggers=frozenset(TRIGGERS),
    )
    fields.update(overrides)
    config = EngineConfig(**fields)  # type: ignore[arg-type]
    actions = (NO_OFFER, *(o.code for o in config.catalogue))
    return DecisionEngine(config, ModelSnapshot.initial(actions, n_segments=3, seed=1), policy)


@pytest.fixture
def engine() -> DecisionEngine:
    return make_engine()

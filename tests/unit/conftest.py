from __future__ import annotations

import pytest

from schemas.decisions import NO_OFFER
from streams.catalogue import DEFAULT_CATALOGUE
from streams.engine import DecisionEngine, EngineConfig
from streams.models import ModelSnapshot
from streams.policy import ContactLimits

HOUR = 3_600_000


def make_engine(**overrides: object) -> DecisionEngine:
    fields: dict[str, object] = dict(
        catalogue=DEFAULT_CATALOGUE,
        policy_version="test-v1",
        control_share=0.0,
        holdout_salt="salt",
        epsilon=0.0,
        gross_margin=0.3,
        attribution_window_ms=48 * HOUR,
        offer_ttl_ms=48 * HOUR,
        decision_lateness_ms=10 * 60_000,
        abandon_after_ms=30 * 60_000,
        limits=ContactLimits(cooldown_ms=HOUR, max_per_day=1, max_per_week=3),
    )
    fields.update(overrides)
    config = EngineConfig(**fields)  # type: ignore[arg-type]
    actions = (NO_OFFER, *(o.code for o in config.catalogue))
    return DecisionEngine(config, ModelSnapshot.initial(actions, n_segments=3, seed=1))


@pytest.fixture
def engine() -> DecisionEngine:
    return make_engine()

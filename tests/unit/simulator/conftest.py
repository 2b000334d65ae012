"""Shared pieces of the simulator's unit tests: a small population and an offer factory."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from schemas.offers import Offer
from simulator.population import Population, build_population
from streams.catalogue import DEFAULT_CATALOGUE, OfferSpec

T0 = 1_700_000_000_000
HOUR_MS = 3_600_000
SPECS = {spec.code: spec for spec in DEFAULT_CATALOGUE}

OfferFactory = Callable[..., Offer]


@pytest.fixture(scope="session")
def population() -> Population:
    return build_population(300, seed=3)


@pytest.fixture
def make_offer() -> OfferFactory:
    """offer(user_id, code="pct10", created_at=T0, ttl_hours=48) with a fresh offer_id."""
    serial = itertools.count(1)

    def offer(
        user_id: str,
        code: str = "pct10",
        created_at: int = T0,
        ttl_hours: float = 48.0,
        offer_id: str | None = None,
    ) -> Offer:
        spec: OfferSpec = SPECS[code]
        n = next(serial)
        return Offer(
            offer_id=offer_id or f"of-{n:024x}",
            decision_id=f"de-{n:024x}",
            user_id=user_id,
            offer_code=spec.code,
            kind=spec.kind,
            title=spec.title,
            value=spec.value,
            coupon_code=f"{spec.coupon_prefix}-{n}",
            created_at=created_at,
            expires_at=created_at + round(ttl_hours * HOUR_MS),
            reason="test",
            segment=0,
            policy_version="test",
            model_version=0,
        )

    return offer


def targeted_offer(spec: OfferSpec, user_id: str, target: str, n: int) -> Offer:
    """The ``n``-th offer of ``spec`` on category ``target``, valid 48 h from ``T0``."""
    return Offer(
        offer_id=f"of-{n:024x}",
        decision_id=f"de-{n:024x}",
        user_id=user_id,
        offer_code=spec.code,
        kind=spec.kind,
        title=spec.title_for(target),
        value=spec.value,
        coupon_code=f"{spec.coupon_prefix}-{n}",
        created_at=T0,
        expires_at=T0 + 48 * HOUR_MS,
        reason="test",
        segment=0,
        policy_version="test",
        model_version=0,
        target_category=target,
    )

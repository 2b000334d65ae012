"""Offers: what the notification service reads from the ``offers`` topic.

Contract: ``schemas/json/offer.schema.json``. Messages are keyed by ``user_id``. ``offer_id``
is stable: the same triggering event always yields the same id, so a redelivered offer can be
dropped by the consumer (idempotency key). Offers past ``expires_at`` must not be shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.codec import pick


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    decision_id: str
    user_id: str
    offer_code: str
    kind: str
    title: str
    value: float
    coupon_code: str
    created_at: int
    expires_at: int
    reason: str
    segment: int
    policy_version: str
    model_version: int
    schema_version: int = 2
    #: A category offer's category (its discount applies to those lines only); None for an
    #: offer on the whole order. New in schema version 2.
    target_category: str | None = None

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Offer:
        return cls(**pick(cls, data))

"""Outcomes: what happened after a decision, attributed to it within the attribution window.

Written by the worker to the internal ``promo-outcomes`` topic and sunk to ClickHouse.
``outcome_id`` is derived from the decision and the source event, so a redelivered event
produces the same outcome and the sink stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.codec import pick


class OutcomeType(StrEnum):
    SHOWN = "shown"
    CLICKED = "clicked"
    #: A purchase within the window (with or without the offer's coupon).
    PURCHASE = "purchase"
    #: A purchase that used the offer's coupon; it also has its ``purchase`` outcome.
    REDEEMED = "redeemed"
    #: The window closed without a purchase: the negative label for learning.
    NO_CONVERSION = "no_conversion"


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome_id: str
    decision_id: str
    user_id: str
    ts: int
    type: OutcomeType
    source_event_id: str
    offer_code: str
    control: bool
    order_total: float = 0.0
    discount: float = 0.0
    #: The purchase's gross margin before the coupon, when every line of it carried a margin
    #: (``ClickEvent.order_margin``); None: unknown, the report applies the global rate.
    order_margin: float | None = None

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Outcome:
        fields = pick(cls, data)
        fields["type"] = OutcomeType(fields["type"])
        return cls(**fields)

"""Training examples: a closed decision turned into a label for the shared models.

Internal topic ``promo-training`` (one partition, so one learner sees them all in order).
Emitted when the decision's window closes: ``label`` is 1 when the user bought within it,
else 0; ``redeemed`` says whether a purchase used the decision's coupon, ``order_value`` what
the first purchase's items were worth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.codec import pick


@dataclass(frozen=True, slots=True)
class TrainingExample:
    decision_id: str
    ts: int
    features: tuple[float, ...]
    offer_code: str
    label: int
    model_version: int
    redeemed: bool = False
    trigger: str = "view"
    #: Items value (before any coupon) of the window's first purchase; 0 without one.
    order_value: float = 0.0

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> TrainingExample:
        fields = pick(cls, data)
        fields["features"] = tuple(fields["features"])
        return cls(**fields)

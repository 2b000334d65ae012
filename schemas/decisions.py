"""Decisions: one record per decision point, whatever was decided (offer, no offer, control).

Written by the worker to the internal ``promo-decisions`` topic and sunk to ClickHouse. Every
decision logs the probability with which its action was chosen (``propensity``), so analysts
can evaluate other policies on this data without bias (inverse propensity weighting), and the
action the policy would have taken (``policy_offer``) even for control users, who receive
nothing. Each decision also names the user's groups at that moment (``segment_name``,
``rule_segment``, ``group``), so offer rates and effects can be compared between groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.codec import pick

#: The action "send nothing". It is also what every control-group decision does.
NO_OFFER = "none"


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    user_id: str
    ts: int
    trigger_event_id: str
    trigger: str
    segment: int
    control: bool
    chosen_offer: str
    policy_offer: str
    propensity: float
    scores: dict[str, float]
    purchase_probs: dict[str, float]
    features: tuple[float, ...]
    expected_order_value: float
    offer_id: str | None
    expires_at: int
    policy_version: str
    model_version: int
    #: Shadow mode: a candidate policy decided beside the serving one; what it would have
    #: sent, with its probability. Logged, never sent. Empty when no shadow runs.
    shadow_policy: str = ""
    shadow_offer: str = ""
    shadow_propensity: float = 0.0
    #: The k-means segment's description in the model version used (``streams.segments``).
    segment_name: str = ""
    #: The rule segment of the user's features: new, potential, regular, high_value, at_risk.
    rule_segment: str = ""
    #: The group the platform last sent for the user (optional ``group`` on clickstream
    #: events); empty when none came.
    group: str = ""
    #: The user's abuse score at the decision (``streams.abuse``); at or above the threshold
    #: the offer is withheld (a suppression with reason ``abuse``).
    abuse_score: float = 0.0
    #: The category ``policy_offer`` is on, for a category offer (``streams.catalogue``);
    #: empty for an offer on the whole order, or none.
    target_category: str = ""
    #: The category the user was most drawn to at the decision (decayed interest from views,
    #: cart adds, purchases and searches, ``SlidingWindowFeatures.interest``); empty when
    #: none yet.
    interest_category: str = ""

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Decision:
        fields = pick(cls, data)
        fields["features"] = tuple(fields["features"])
        return cls(**fields)

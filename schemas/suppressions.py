"""Suppressions: a decision point that sent nothing although it could have, and why.

Written by the worker to the internal ``promo-suppressions`` topic and sunk to ClickHouse,
one record per suppressed decision point, so an analyst can count what caps, cool-downs,
budget and control cost or saved. Two kinds:

- no decision was taken (``late``, ``cooldown``, ``open_decisions``, ``daily_cap``,
  ``weekly_cap``): ``decision_id`` is empty;
- a decision was taken and its offer withheld (``control``, ``budget``, ``pacing``,
  ``abuse``: the user's abuse score reached the threshold, ``streams.abuse``):
  ``decision_id`` names it (its ``chosen_offer`` is ``none``), ``policy_offer`` is what the
  policy chose and ``expected_cost`` that offer's expected discount.

``suppression_id`` is derived from the user, the triggering event and the policy version,
so a redelivered event produces the same record and the sink stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.codec import pick

#: Decision points where no decision is taken: the user is not eligible now.
INELIGIBLE = ("late", "cooldown", "open_decisions", "daily_cap", "weekly_cap")
#: Decisions whose offer is withheld.
WITHHELD = ("control", "budget", "pacing", "abuse")
REASONS = INELIGIBLE + WITHHELD


@dataclass(frozen=True, slots=True)
class Suppression:
    suppression_id: str
    user_id: str
    ts: int
    trigger_event_id: str
    trigger: str
    reason: str
    policy_version: str
    decision_id: str = ""
    policy_offer: str = ""
    expected_cost: float = 0.0

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> Suppression:
        return cls(**pick(cls, data))

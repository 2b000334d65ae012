"""Training examples for the shared models, on the internal topic ``promo-training`` (one
partition, so one learner sees them all in order). Two kinds:

- ``TrainingExample``: a closed decision turned into a label. Emitted when the decision's
  window closes: ``label`` is 1 when the user bought within it, else 0; ``redeemed`` says
  whether a purchase used the decision's coupon, ``order_value`` what the first purchase's
  items were worth.
- ``SearchExample``: a search and the category the user looked at next
  (``streams.search_interest``), told apart by its ``query``. A learner that predates it
  reports it as unreadable and passes over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

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


@dataclass(frozen=True, slots=True)
class SearchExample:
    #: The event that paired with the search (the view or cart add): the record's key.
    example_id: str
    ts: int
    query: str
    category: str

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> SearchExample:
        return cls(**pick(cls, data))


def decode_example(data: bytes) -> TrainingExample | SearchExample:
    """Either kind from its JSON bytes (a search example is the one with a ``query``)."""
    fields = orjson.loads(data)
    if not isinstance(fields, dict):
        raise TypeError(f"a training example is a JSON object, not {type(fields).__name__}")
    if "query" in fields:
        return SearchExample.from_json_dict(fields)
    return TrainingExample.from_json_dict(fields)

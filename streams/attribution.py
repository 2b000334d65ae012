"""Outcomes of decisions: offers shown and clicked, purchases and coupon redemptions within the
attribution window, and the windows that close without a purchase.

Rules:
- ``offer_shown`` / ``offer_clicked`` events count for the decision whose offer they name, once.
- A purchase at time t counts for *every* open decision of the user taken at or before t whose
  window has not closed (its label is "bought within the window", which is what the response
  model predicts). It is a redemption for the decision whose coupon it uses; for a category
  offer, only if the purchase holds a line of its category (or lists no line categories).
- Every decision's training example is emitted when its window closes, positive or negative,
  with whether its coupon was redeemed. Learning a positive the moment it happens but a
  negative only 48 h later would show the learner mostly positives at first and bias every
  purchase probability upwards (delayed-feedback bias); at close, each label is final.
- A decision whose offer the abuse gate withheld (``streams.abuse``) has its outcomes but
  teaches the models nothing: the gate's evidence (codes we never sent) is not among the
  features, so its users' labels would read as ordinary ``none`` decisions in the very cells
  where the policy wanted to send an offer, and bias them.
- With the default cool-down equal to the window, a user has one open decision at a time
  whatever the action, so each purchase belongs to one decision and every arm is labelled
  over the same kind of window.
Outcome ids derive from the decision and the source event, so a redelivered event re-derives
the same ids and the ClickHouse sink keeps one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.events import ClickEvent, EventType
from schemas.outcomes import Outcome, OutcomeType
from schemas.training import TrainingExample
from streams.catalogue import OfferSpec


@dataclass(slots=True)
class OpenDecision:
    """A decision whose attribution window is still open, kept in the user's state."""

    decision_id: str
    ts: int
    expires_at: int
    action: str
    offer_id: str | None
    coupon_code: str | None
    control: bool
    features: tuple[float, ...]
    model_version: int
    converted: bool = False
    shown: bool = False
    clicked: bool = False
    redeemed: bool = False
    #: The decision point (view, add_to_cart, cart_return): the models learn per trigger.
    trigger: str = "view"
    #: Items value (before any coupon) of the window's first purchase, 0 without one: the
    #: models learn from it what an order is worth.
    order_value: float = 0.0
    #: The abuse gate withheld this decision's offer: its window closes without a label.
    gated: bool = False
    #: A category offer's category: only a purchase with a line of it can redeem the offer.
    target: str | None = None

    def to_compact(self) -> list[Any]:
        # ``gated`` only when set (or a target follows), ``target`` only when set: a row
        # without them keeps format 3's length, which older versions read
        # (``streams.user_state``, formats 4 and 5).
        row = [
            self.decision_id,
            self.ts,
            self.expires_at,
            self.action,
            self.offer_id,
            self.coupon_code,
            self.control,
            self.features,
            self.model_version,
            self.converted,
            self.shown,
            self.clicked,
            self.redeemed,
            self.trigger,
            self.order_value,
        ]
        if self.target:
            return [*row, self.gated, self.target]
        return [*row, True] if self.gated else row

    @classmethod
    def from_compact(cls, row: list[Any]) -> OpenDecision:
        decision = cls(*row)
        decision.features = tuple(decision.features)
        return decision


def _outcome(
    decision: OpenDecision,
    kind: OutcomeType,
    user_id: str,
    ts: int,
    source_event_id: str,
    order_total: float = 0.0,
    discount: float = 0.0,
    order_margin: float | None = None,
) -> Outcome:
    return Outcome(
        outcome_id=f"{decision.decision_id}:{kind.value}:{source_event_id}",
        decision_id=decision.decision_id,
        user_id=user_id,
        ts=ts,
        type=kind,
        source_event_id=source_event_id,
        offer_code=decision.action,
        control=decision.control,
        order_total=order_total,
        discount=discount,
        order_margin=order_margin,
    )


def _example(decision: OpenDecision) -> TrainingExample:
    return TrainingExample(
        decision_id=decision.decision_id,
        ts=decision.expires_at,
        features=decision.features,
        offer_code=decision.action,
        label=int(decision.converted),
        model_version=decision.model_version,
        redeemed=decision.redeemed,
        trigger=decision.trigger,
        order_value=decision.order_value,
    )


def coupon_discount(offer: OfferSpec, order_total: float, items_total: float) -> float:
    """What a coupon took off an order, from the amount paid (after the discount).

    >>> from streams.catalogue import DEFAULT_CATALOGUE
    >>> round(coupon_discount(DEFAULT_CATALOGUE[0], order_total=90.0, items_total=0.0), 2)
    10.0
    """
    if offer.kind in ("percent_off", "bundle"):
        before = items_total if items_total > order_total else order_total / (1 - offer.value / 100)
        return round(before - order_total, 2)
    return offer.cost(order_total)


def attribute_event(
    open_decisions: list[OpenDecision],
    event: ClickEvent,
    offers: dict[str, OfferSpec],
    outcomes: list[Outcome],
) -> None:
    """Append the outcomes that ``event`` causes (labels come when windows close)."""
    if event.type is EventType.PURCHASE:
        _attribute_purchase(open_decisions, event, offers, outcomes)
    elif event.type in (EventType.OFFER_SHOWN, EventType.OFFER_CLICKED):
        shown = event.type is EventType.OFFER_SHOWN
        for d in open_decisions:
            if d.offer_id is None or d.offer_id != event.offer_id:
                continue
            if shown and not d.shown:
                d.shown = True
                outcomes.append(
                    _outcome(d, OutcomeType.SHOWN, event.user_id, event.ts, event.event_id)
                )
            elif not shown and not d.clicked:
                d.clicked = True
                outcomes.append(
                    _outcome(d, OutcomeType.CLICKED, event.user_id, event.ts, event.event_id)
                )


def _attribute_purchase(
    open_decisions: list[OpenDecision],
    event: ClickEvent,
    offers: dict[str, OfferSpec],
    outcomes: list[Outcome],
) -> None:
    total = event.order_total or 0.0
    items_total = sum(line.price * line.quantity for line in event.items)
    margin = event.order_margin
    for d in open_decisions:
        if not d.ts <= event.ts < d.expires_at:
            continue
        redeemed = (
            d.coupon_code is not None
            and event.coupon_code == d.coupon_code
            and _holds_target(event, d.target)
        )
        spec = offers.get(d.action)
        discount = coupon_discount(spec, total, items_total) if redeemed and spec else 0.0
        kinds = (
            (OutcomeType.PURCHASE, OutcomeType.REDEEMED) if redeemed else (OutcomeType.PURCHASE,)
        )
        outcomes += [
            _outcome(d, kind, event.user_id, event.ts, event.event_id, total, discount, margin)
            for kind in kinds
        ]
        d.redeemed = d.redeemed or redeemed
        if not d.converted:
            d.order_value = round(items_total if items_total > 0 else total + discount, 2)
        d.converted = True


def _holds_target(purchase: ClickEvent, target: str | None) -> bool:
    """Whether a purchase can redeem an offer on ``target`` (None: the whole order): it has a
    line of that category. A purchase that lists no line categories is taken at its word
    (the shop applied the code, which it does only to the category)."""
    if target is None:
        return True
    categories = [line.category for line in purchase.items if line.category is not None]
    return not categories or target in categories


def close_expired(
    open_decisions: list[OpenDecision],
    now: int,
    user_id: str,
    outcomes: list[Outcome],
    examples: list[TrainingExample],
) -> list[OpenDecision]:
    """Close the windows that ended by event time ``now``; returns the decisions still open."""
    still_open = []
    for d in open_decisions:
        if d.expires_at > now:
            still_open.append(d)
            continue
        if not d.converted:
            outcomes.append(_outcome(d, OutcomeType.NO_CONVERSION, user_id, d.expires_at, ""))
        if not d.gated:
            examples.append(_example(d))
    return still_open

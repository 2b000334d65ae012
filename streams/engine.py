"""One event in, its consequences out: features, attribution, and maybe a decision and an offer.

This is the whole per-event path, pure: the agent loads the user's state, calls
:meth:`DecisionEngine.handle` for each event, saves the state and sends what came out.

Decision points are the triggers configured (by default cart adds and a return to an
abandoned cart: moments where the user can still be moved; product views optionally), for
events that are not late (no older than ``decision_lateness_ms`` behind the user's latest
event) and users within their contact limits. A control user gets the same decision logged,
with the action ``none`` and the offer the policy would have sent in ``policy_offer``. With a
daily budget (``streams.budget``) an offer the budget or its pacing cannot afford is withheld
the same way, as is any offer to a user whose abuse score reaches the threshold
(``streams.abuse``). Every decision point that sends nothing although it could have leaves a
:class:`~schemas.suppressions.Suppression` saying why.

The policy is pluggable (:class:`Policy`): the serving one reads the shared models
(:class:`UpliftPolicy`); ``promo evaluate`` runs baselines and oracles through this same
code, so every policy meets the same decision points, caps and attribution.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Protocol

from schemas.decisions import NO_OFFER, Decision
from schemas.events import ClickEvent, EventType
from schemas.offers import Offer
from schemas.outcomes import Outcome
from schemas.suppressions import Suppression
from schemas.training import SearchExample, TrainingExample
from streams.abuse import OFF as ABUSE_OFF
from streams.abuse import abuse_score, gates_user
from streams.attribution import OpenDecision, attribute_event, close_expired
from streams.budget import GATES, BudgetLedger
from streams.bundles import BundleRules
from streams.catalogue import OfferSpec
from streams.feature_vector import feature_vector
from streams.models import ModelSnapshot
from streams.policy import (
    Choice,
    ContactLimits,
    choose_offer,
    in_control_group,
    in_explore_cohort,
    ineligibility,
    unit_hash,
)
from streams.search_interest import SEARCH_LINK_MS, top_interest, with_searches
from streams.segments import HIGH_VALUE_SPEND_30D, rule_segment
from streams.user_state import UserState

_TRIGGERS = {EventType.VIEW: "view", EventType.ADD_TO_CART: "add_to_cart"}
_PAIRS_WITH_SEARCH = frozenset(_TRIGGERS)
#: Every decision point the engine knows; ``EngineConfig.triggers`` picks among them.
TRIGGERS = ("view", "add_to_cart", "cart_return")
#: Withheld offers that would have reached nobody in either arm: no contact is counted.
_NOT_CONTACTED = (*GATES, "abuse")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    catalogue: tuple[OfferSpec, ...]
    policy_version: str
    control_share: float
    holdout_salt: str
    explore_share: float
    #: Standard deviations of the effect's posterior an offer's gain must clear.
    confidence_z: float
    gross_margin: float
    attribution_window_ms: int
    offer_ttl_ms: int
    decision_lateness_ms: int
    abandon_after_ms: int
    limits: ContactLimits
    triggers: frozenset[str] = frozenset({"add_to_cart", "cart_return"})
    #: Shadow mode: the serving rule with this confidence runs beside the policy, logged
    #: with every decision and never sent (None: no shadow).
    shadow_z: float | None = None
    shadow_policy: str = ""
    #: Expected discount the shop may commit per UTC day (None: no budget), split evenly
    #: over ``budget_partitions`` ledgers (one per clickstream partition).
    daily_budget: float | None = None
    budget_partitions: int = 1
    #: 30-day spend from which a user's rule segment is ``high_value`` (``streams.segments``).
    high_value_spend: float = HIGH_VALUE_SPEND_30D
    #: Users whose abuse score (``streams.abuse``) reaches this get no offer; 1: gate off.
    abuse_threshold: float = ABUSE_OFF

    @property
    def ledger_budget(self) -> float | None:
        """One partition's share of the daily budget."""
        return None if self.daily_budget is None else self.daily_budget / self.budget_partitions

    @property
    def actions(self) -> tuple[str, ...]:
        return (NO_OFFER, *(o.code for o in self.catalogue))


@dataclass(slots=True)
class EngineOutput:
    decisions: list[Decision] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    training: list[TrainingExample] = field(default_factory=list)
    suppressions: list[Suppression] = field(default_factory=list)
    #: Searches paired with the category looked at next: the query model's examples (they
    #: go to the training topic too).
    searches: list[SearchExample] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a policy sees at a decision point."""

    user_id: str
    decision_id: str
    ts: int
    trigger: str
    features: tuple[float, ...]
    order_value: float
    #: In the sticky exploration cohort: the policy may explore for this user.
    explore: bool
    #: Uniform in [0, 1), fixed by the decision id.
    draw: float
    models: ModelSnapshot
    #: Gross margin rate of the order at stake: the cart's, where its lines carry margins
    #: (``SlidingWindowFeatures.cart_margin_rate``), else the configured ``gross_margin``.
    margin_rate: float
    #: The offers that can be sent here: a category offer only where the cart holds its
    #: category (``OfferSpec.scope``).
    offers: tuple[OfferSpec, ...] = ()
    #: Each category offer's share of the order it applies to, and the category it is on.
    scopes: dict[str, float] = field(default_factory=dict)
    targets: dict[str, str] = field(default_factory=dict)


class Policy(Protocol):
    def choose(self, context: DecisionContext) -> Choice: ...


@dataclass(frozen=True, slots=True)
class UpliftPolicy:
    """The serving policy: lower confidence bound on incremental profit (streams.policy)."""

    catalogue: tuple[OfferSpec, ...]
    confidence_z: float

    def choose(self, context: DecisionContext) -> Choice:
        model = context.models.response
        return choose_offer(
            model.belief(context.features, context.trigger),
            order_value=context.order_value,
            catalogue=context.offers or self.catalogue,
            gross_margin=context.margin_rate,
            redemption_rates={o.code: model.redemption_rate(o.code) for o in self.catalogue},
            z=self.confidence_z,
            explore=context.explore,
            draw=context.draw,
            scopes=context.scopes,
        )


def stable_id(prefix: str, *parts: str) -> str:
    """``prefix-`` and 24 hex digits fixed by ``parts`` (idempotency keys)."""
    return f"{prefix}-{hashlib.blake2b('|'.join(parts).encode(), digest_size=12).hexdigest()}"


class DecisionEngine:
    def __init__(
        self, config: EngineConfig, snapshot: ModelSnapshot, policy: Policy | None = None
    ) -> None:
        self.config = config
        self.snapshot = snapshot
        #: The bundle rules (``promo rules``) a complement bundle's target comes from; None
        #: until the first arrive: no complement bundle is offered before.
        self.rules: BundleRules | None = None
        self.policy = policy or UpliftPolicy(config.catalogue, config.confidence_z)
        self.shadow = (
            UpliftPolicy(config.catalogue, config.shadow_z) if config.shadow_z is not None else None
        )
        self._offers = {o.code: o for o in config.catalogue}
        self._by_category = any(o.category is not None for o in config.catalogue)
        #: Decisions already sent, by id, for messages that may be read again after a crash
        #: (``agents.clickstream`` loads them from the decisions topic): a replay decides as
        #: the original did, whatever model arrived since.
        self.replays: dict[str, Decision] = {}

    def new_state(self) -> UserState:
        return UserState.new(self.config.abandon_after_ms)

    def handle(
        self,
        state: UserState,
        event: ClickEvent,
        out: EngineOutput,
        ledger: BudgetLedger | None = None,
    ) -> None:
        """Fold ``event`` into ``state`` and append what it causes to ``out``. ``ledger``: the
        budget ledger of the event's partition (used when the config sets a daily budget)."""
        f = state.features
        late = f.watermark >= 0 and event.ts < f.watermark - self.config.decision_lateness_ms
        amount = event.order_total if event.type is EventType.PURCHASE else event.price
        f.update(
            event.type.value,
            ts=event.ts,
            category=event.category,
            amount=amount or 0.0,
            item_id=event.item_id,
            quantity=event.quantity or 1,
            margin=event.margin,
        )
        state.note_group(event.group, event.ts)
        if event.type is EventType.SEARCH:
            _searched(state, event, out)
        elif state.searches and state.searches[-1][2]:
            _pair_search(state, event, out)
        code = event.coupon_code
        if code is not None and all(d.coupon_code != code for d in state.open_decisions):
            f.record_unsent_code(event.ts)
        if state.open_decisions:
            state.open_decisions = close_expired(
                state.open_decisions, event.ts, event.user_id, out.outcomes, out.training
            )
            attribute_event(state.open_decisions, event, self._offers, out.outcomes)
        trigger = "cart_return" if f.returning_to_cart else _TRIGGERS.get(event.type)
        if trigger is None or trigger not in self.config.triggers:
            return
        if late:
            out.suppressions.append(self._suppression(event, trigger, "late"))
            return
        if self.config.ledger_budget is None:
            ledger = None
        elif ledger is not None:
            ledger.observe(event.ts)
        blocked = ineligibility(
            event.ts,
            last_decision=state.last_decision,
            offer_times=state.offer_times,
            open_decisions=len(state.open_decisions),
            limits=self.config.limits,
        )
        if blocked is None:
            self._decide(state, event, trigger, out, ledger)
        else:
            out.suppressions.append(self._suppression(event, trigger, blocked))

    def close_expired(self, state: UserState, user_id: str, now: int, out: EngineOutput) -> bool:
        """Close windows ended by ``now`` for a user with no new events; True if any closed."""
        before = len(state.open_decisions)
        state.open_decisions = close_expired(
            state.open_decisions, now, user_id, out.outcomes, out.training
        )
        return len(state.open_decisions) != before

    def _decide(
        self,
        state: UserState,
        event: ClickEvent,
        trigger: str,
        out: EngineOutput,
        ledger: BudgetLedger | None,
    ) -> None:
        cfg, snapshot = self.config, self.snapshot
        decision_id = stable_id("de", event.user_id, event.event_id, cfg.policy_version)
        vector = feature_vector(state.features, event.ts)
        control = in_control_group(event.user_id, salt=cfg.holdout_salt, share=cfg.control_share)
        logged = self.replays.pop(decision_id, None)
        interest = self._interest(state, event.ts)
        offers, targets, scopes = self._applicable(state, interest)
        if logged is None:
            # The features' guess as the models' realised orders revise it.
            order_value = snapshot.response.order_value(vector, trigger)
            segment, model_version = snapshot.segmenter.segment(vector), snapshot.version
            segment_name = snapshot.segmenter.name_of(segment)
            # A control user may be in the cohort too: their logged policy_offer is then what
            # the policy would have explored, so control mirrors treatment exactly.
            explore = in_explore_cohort(
                event.user_id, salt=cfg.holdout_salt, share=cfg.explore_share
            )
            context = DecisionContext(
                event.user_id,
                decision_id,
                event.ts,
                trigger,
                vector,
                order_value,
                explore,
                unit_hash("explore", decision_id),
                snapshot,
                state.features.cart_margin_rate(cfg.gross_margin),
                offers,
                scopes,
                targets,
            )
            choice = self.policy.choose(context)
            f = state.features
            abuse = round(abuse_score(f.unsent_codes("30d"), f.count("purchase", "30d")), 4)
            shadow = (
                _shadow_of(cfg.shadow_policy, self.shadow.choose(replace(context, explore=False)))
                if self.shadow
                else ("", "", 0.0)
            )
            target, interest_category = targets.get(choice.action), top_interest(interest)
        else:
            # Read again after a crash, after this decision's outputs went out: decide as then,
            # whatever model arrived since, so that a re-sent offer is the offer already sent.
            segment, model_version = logged.segment, logged.model_version
            segment_name = logged.segment_name
            choice, shadow = _logged_choice(logged), _logged_shadow(logged)
            order_value, abuse = logged.expected_order_value, logged.abuse_score
            # The query model may have learned since: the target is the one already sent.
            target, interest_category = logged.target_category or None, logged.interest_category
        # Control's logged action is fixed by the holdout: probability 1.
        action, propensity = choice.action, 1.0 if control else choice.propensity
        reason: str | None = None
        cost = 0.0
        if choice.action != NO_OFFER:
            cost = self.expected_cost(choice, choice.action, order_value, scopes)
            # A hunter gets no offer whatever the draw (probability 1 of `none`), and spends
            # none of the day's budget.
            gated = self._abuse_gate(abuse) or self._gate(
                ledger, event.ts, choice, order_value, scopes
            )
            if control:
                action, reason = NO_OFFER, gated[0] if gated else "control"
            elif gated:  # `none`, with the chance of every draw the gate turns into `none`
                action, (reason, propensity) = NO_OFFER, gated
        if logged is not None:  # the record already sent wins over a ledger that moved
            action, propensity = logged.chosen_offer, logged.propensity
            if action != NO_OFFER:
                reason = None
            elif choice.action != NO_OFFER and reason is None:
                reason = "control" if control else "budget"
        if reason is not None:
            out.suppressions.append(
                self._suppression(event, trigger, reason, decision_id, choice.action, cost)
            )
        if choice.action != NO_OFFER:
            if reason not in _NOT_CONTACTED:
                # Sent, or held back from a control user: both groups live under the same caps.
                state.record_contact(event.ts)
            budget = cfg.ledger_budget
            if ledger is not None and budget is not None and not control:
                ledger.commit(cost if action != NO_OFFER else 0.0)
                ledger.steer(event.ts, budget)
        expires_at = event.ts + cfg.attribution_window_ms
        offer = None
        if action != NO_OFFER:
            why = _describe_trigger(event, trigger, state.features.cart_value)
            offer = self._offer(
                decision_id, event, why, action, segment, choice, model_version, target
            )
            out.offers.append(offer)
        state.last_decision = event.ts
        state.open_decisions.append(
            OpenDecision(
                decision_id,
                event.ts,
                expires_at,
                action,
                offer.offer_id if offer else None,
                offer.coupon_code if offer else None,
                control,
                vector,
                model_version,
                trigger=trigger,
                gated=reason == "abuse",
                target=target if action != NO_OFFER else None,
            )
        )
        out.decisions.append(
            Decision(
                decision_id=decision_id,
                user_id=event.user_id,
                ts=event.ts,
                trigger_event_id=event.event_id,
                trigger=trigger,
                segment=segment,
                control=control,
                chosen_offer=action,
                policy_offer=choice.action,
                propensity=propensity,
                scores=choice.scores,
                purchase_probs=choice.purchase_probs,
                features=vector,
                expected_order_value=round(order_value, 2),
                offer_id=offer.offer_id if offer else None,
                expires_at=expires_at,
                policy_version=cfg.policy_version,
                model_version=model_version,
                shadow_policy=shadow[0],
                shadow_offer=shadow[1],
                shadow_propensity=shadow[2],
                segment_name=segment_name,
                rule_segment=rule_segment(vector, cfg.high_value_spend),
                group=state.group,
                abuse_score=abuse,
                target_category=target or "",
                interest_category=interest_category,
            )
        )

    def _interest(self, state: UserState, now: int) -> dict[str, float]:
        """The user's interest in each category at ``now``: what they looked at and bought,
        and their latest searches as the query model reads them now."""
        return with_searches(
            state.features.interest(now), state.searches, self.snapshot.queries, now
        )

    def _applicable(
        self, state: UserState, interest: dict[str, float]
    ) -> tuple[tuple[OfferSpec, ...], dict[str, str], dict[str, float]]:
        """The offers that can be sent at this decision, each category offer's target (by
        ``interest``, ``_interest``) and the share of the order it applies to
        (``OfferSpec.scope``)."""
        catalogue = self.config.catalogue
        if not self._by_category:
            return catalogue, {}, {}
        shares = state.features.cart_category_shares()
        targets, scopes = {}, {}
        for spec in catalogue:
            if spec.category is not None:
                target, scopes[spec.code] = spec.scope(shares, interest, self.rules)
                if target is not None:
                    targets[spec.code] = target
        return tuple(o for o in catalogue if scopes.get(o.code, 1.0) > 0), targets, scopes

    def expected_cost(
        self,
        choice: Choice,
        action: str,
        order_value: float,
        scopes: dict[str, float] | None = None,
    ) -> float:
        """What sending ``action`` is expected to cost: P(buy | action) x the share of its
        buyers who redeem x the discount (P(buy) is 1 for a policy that does not say);
        ``scopes``: each category offer's share of the order."""
        p_buy = choice.purchase_probs.get(action, 1.0)
        rate = self.snapshot.response.redemption_rate(action)
        scope = (scopes or {}).get(action, 1.0)
        return p_buy * rate * self._offers[action].cost(order_value, scope)

    def _abuse_gate(self, score: float) -> tuple[str, float] | None:
        return ("abuse", 1.0) if gates_user(score, self.config.abuse_threshold) else None

    def _gate(
        self,
        ledger: BudgetLedger | None,
        ts: int,
        choice: Choice,
        order_value: float,
        scopes: dict[str, float],
    ) -> tuple[str, float] | None:
        """Why the budget withholds the chosen offer, with the probability the decision had
        of ending as ``none`` (every draw whose offer the gate would withhold, and ``none``
        itself); None when it goes out."""
        budget = self.config.ledger_budget
        if ledger is None or budget is None:
            return None

        def withheld(action: str) -> str | None:
            if action == NO_OFFER:
                return NO_OFFER
            cost = self.expected_cost(choice, action, order_value, scopes)
            return ledger.gate(ts, cost, choice.scores.get(action, 0.0), budget)

        reason = withheld(choice.action)
        if reason is None:
            return None
        probabilities = choice.action_probabilities()
        return reason, sum(p for a, p in probabilities.items() if withheld(a) is not None)

    def _suppression(
        self,
        event: ClickEvent,
        trigger: str,
        reason: str,
        decision_id: str = "",
        policy_offer: str = "",
        expected_cost: float = 0.0,
    ) -> Suppression:
        version = self.config.policy_version
        return Suppression(
            stable_id("su", event.user_id, event.event_id, version),
            event.user_id,
            event.ts,
            event.event_id,
            trigger,
            reason,
            version,
            decision_id,
            policy_offer,
            round(expected_cost, 4),
        )

    def _offer(
        self,
        decision_id: str,
        event: ClickEvent,
        why: str,
        action: str,
        segment: int,
        choice: Choice,
        model_version: int,
        target: str | None,
    ) -> Offer:
        spec = self._offers[action]
        title = spec.title_for(target)
        offer_id = stable_id("of", decision_id)
        probs = choice.purchase_probs
        if NO_OFFER in probs and action in probs and action in choice.scores:
            reason = (
                f"{why}; model v{model_version} expects purchase chance "
                f"{probs[NO_OFFER]:.0%} without an offer and "
                f"{probs[action]:.0%} with {title.lower()}, "
                f"expected extra profit {choice.scores[action]:+.2f}"
            )
        else:
            reason = f"{why}; chosen by policy {self.config.policy_version}"
        if choice.explored:
            reason += " (exploration cohort: one of the offers that might pay, at random)"
        return Offer(
            offer_id=offer_id,
            decision_id=decision_id,
            user_id=event.user_id,
            offer_code=spec.code,
            kind=spec.kind,
            title=title,
            value=spec.value,
            coupon_code=f"{spec.coupon_prefix}-{offer_id[3:13].upper()}",
            created_at=event.ts,
            expires_at=event.ts + self.config.offer_ttl_ms,
            reason=reason,
            segment=segment,
            policy_version=self.config.policy_version,
            model_version=model_version,
            target_category=target,
        )


def _searched(state: UserState, event: ClickEvent, out: EngineOutput) -> None:
    """A search the platform sent with its category is interest in it, and an example for the
    query model as it stands; one without waits for the category the user looks at next, to
    teach the model, and is kept to be read at decisions."""
    query = event.query
    if event.category is not None:
        state.features.add_interest(event.category, event.ts)
        if query:
            out.searches.append(SearchExample(event.event_id, event.ts, query, event.category))
    elif query:
        state.note_search(query, event.ts)


def _pair_search(state: UserState, event: ClickEvent, out: EngineOutput) -> None:
    """The first view or cart add of a categorised item within ``SEARCH_LINK_MS`` after the
    waiting search pairs with it; a search that old without one waits no more (an event from
    before the search, arriving late, neither pairs nor ends the wait)."""
    waiting = state.searches[-1]
    query, searched_at = str(waiting[0]), int(waiting[1])
    after = event.ts - searched_at
    if after > SEARCH_LINK_MS:
        waiting[2] = 0
    elif after >= 0 and event.category is not None and event.type in _PAIRS_WITH_SEARCH:
        out.searches.append(SearchExample(event.event_id, event.ts, query, event.category))
        waiting[2] = 0


def _shadow_of(name: str, choice: Choice) -> tuple[str, str, float]:
    return name, choice.action, choice.propensity


def _logged_shadow(d: Decision) -> tuple[str, str, float]:
    return d.shadow_policy, d.shadow_offer, d.shadow_propensity


def _logged_choice(d: Decision) -> Choice:
    """The policy's choice as a decision logged it. A sent offer explored exactly when its
    propensity is below 1 (a serving choice is certain)."""
    explored = not d.control and d.chosen_offer != NO_OFFER and d.propensity < 1.0
    return Choice(d.policy_offer, d.propensity, d.scores, d.purchase_probs, explored=explored)


def _describe_trigger(event: ClickEvent, trigger: str, cart_value: float) -> str:
    if trigger == "cart_return":
        return f"came back to a cart worth {cart_value:.2f} left unbought"
    if trigger == "add_to_cart":
        return f"added {event.item_id} ({event.category}) to a cart now worth {cart_value:.2f}"
    return f"viewed {event.item_id} ({event.category})"

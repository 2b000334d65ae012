"""The shop and the decision engine in one process: a policy's closed loop, no broker.

The loop advances sim time in steps; each step's events go through the engine's pure
per-event path (``DecisionEngine.handle``, the same code the Faust agent calls), offers reach
the shop at once (the production target is tens of milliseconds), windows close on event
time, and closed windows' labels update the models as the learner would (a new model version
every ``publish_every`` labels). Everything the engine emits is kept, so the caller can load
it into ClickHouse and read every estimate back through the analysts' SQL.

Common random numbers: every user draws behaviour and offer responses from their own seeded
streams (``simulator.shop``), so with the same seed a user no offer reaches behaves
identically under every policy (a coupon hunter is reached by the offers of every account
of their ring). The difference between two policies' realised profits is
then the effect of their offers alone, and its standard error is small.

>>> from simulator.population import build_population
>>> from streams.catalogue import DEFAULT_CATALOGUE
>>> population = build_population(40, seed=2)
>>> hours = []
>>> result = play(population, None, seed=2, days=1.0125, start_ms=1_700_000_000_000,
...               on_progress=hours.append)
>>> len(result.profits) == 40 and result.decisions == [] and result.events > 40
True
>>> len(hours), round(sum(hours), 6)  # once per simulated hour, and the last 0.3 h
(25, 24.3)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from schemas.decisions import Decision
from schemas.events import ClickEvent, EventType
from schemas.offers import Offer
from schemas.outcomes import Outcome
from simulator.population import Population
from simulator.shop import DAY_MS, Shop
from streams.budget import BudgetLedger
from streams.bundles import count_rules
from streams.catalogue import COMPLEMENT
from streams.engine import DecisionEngine, EngineOutput
from streams.user_state import UserState

#: Sim time per loop step; offers created within a step are shown by its end.
STEP_MS = 60_000
HOUR_MS = 3_600_000
#: How often windows of users who stay away are closed (the worker's sweep), and progress
#: is told.
SWEEP_MS = HOUR_MS


@dataclass(slots=True)
class LoopResult:
    """What one policy did to one simulated population."""

    #: Realised profit per user, in population order: margin x revenue - discount.
    profits: np.ndarray
    #: What coupons cost the shop, per user.
    discounts: np.ndarray
    events: int
    decisions: list[Decision] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    #: Every purchase event (what the analysts' per-user views read revenue from).
    purchases: list[ClickEvent] = field(default_factory=list)
    model_version: int = 0
    #: Suppressed decision points by reason (counted, not kept: there are many).
    suppressions: Counter[str] = field(default_factory=Counter)
    #: Expected discount committed per day under a daily budget (the ledger's view).
    committed_by_day: list[float] = field(default_factory=list)
    #: Expected discount of the offers withheld, by suppression reason.
    withheld_cost: dict[str, float] = field(default_factory=dict)
    #: Decision points gated for abuse, by user.
    gated_users: Counter[str] = field(default_factory=Counter)
    #: Realised profit per user so far at each of ``play``'s ``marks_ms`` (cumulative).
    profits_at: list[np.ndarray] = field(default_factory=list)


def play(
    population: Population,
    engine_for: Callable[[Shop], DecisionEngine] | None,
    *,
    seed: int,
    days: float,
    start_ms: int,
    gross_margin: float = 0.3,
    publish_every: int = 200,
    run_id: str = "loop",
    warmup_days: float = 0.0,
    on_progress: Callable[[float], object] | None = None,
    states_out: dict[str, UserState] | None = None,
    marks_ms: Sequence[int] = (),
    rules_days: float = 30.0,
    rules_min_orders: int = 20,
) -> LoopResult:
    """Run ``days`` of the shop with the engine ``engine_for(shop)`` deciding (``None``: no
    engine, no offers). The engine is built on the shop so that an oracle can look inside.

    The first ``warmup_days`` of the ``days`` are history: the engine follows every event
    (features, windows) but takes no decision, as a shop has before the engine starts, so
    that analysts have a pre-period (CUPED) and the policy starts from known users.
    ``on_progress`` is told the simulated hours played, at each hourly sweep (not per event:
    nothing on the hot loop). ``states_out``, if given, receives the users' engine states at
    the end (``benchmarks.abuse_scores`` reads behaviour from them). ``marks_ms``: event
    times at which every user's realised profit so far is kept (``LoopResult.profits_at``),
    so that a policy's truth can be split by period.

    With a complement bundle in the engine's catalogue, the bundle rules are counted as
    ``promo rules`` counts them (``streams.bundles.count_rules``: the purchases of the last
    ``rules_days``, pairs bought together in ``rules_min_orders`` orders or more) when the
    engine starts deciding, and again every simulated day, as a daily schedule would.
    """
    shop = Shop(population, start_ms=start_ms, run_id=run_id, seed=seed)
    engine = engine_for(shop) if engine_for else None
    n = len(population.users)
    end_ms = start_ms + round(days * DAY_MS)
    decide_from = start_ms + round(warmup_days * DAY_MS)
    deciding = engine.config if engine else None
    if engine and deciding and decide_from > start_ms:
        engine.config = replace(deciding, triggers=frozenset())
    loop = _Loop(engine, shop, publish_every)
    now, next_sweep, reported = start_ms, start_ms + SWEEP_MS, start_ms
    marks = sorted(marks_ms)
    profits_at: list[np.ndarray] = []
    catalogue = engine.config.catalogue if engine else ()
    next_rules = decide_from if any(o.category == COMPLEMENT for o in catalogue) else end_ms

    def profits() -> np.ndarray:
        return np.array([shop.ledger(i).profit(gross_margin) for i in range(n)])

    while now < end_ms:
        while marks and marks[0] <= now:
            profits_at.append(profits())
            marks.pop(0)
        if engine and deciding and now >= decide_from:
            engine.config = deciding
        if engine and now >= next_rules:
            since = now - round(rules_days * DAY_MS)
            recent = (p for p in loop.purchases if p.ts >= since)
            baskets = ([line.category or "" for line in p.items] for p in recent)
            engine.rules = count_rules(baskets, rules_min_orders, now, since, now)
            next_rules += DAY_MS
        now = min(end_ms, now + STEP_MS)
        loop.step(shop.advance_events(now))
        if now >= next_sweep:
            loop.sweep(now)
            next_sweep += SWEEP_MS
            if on_progress is not None:
                on_progress((now - reported) / HOUR_MS)
                reported = now
    if on_progress is not None and now > reported:
        on_progress((now - reported) / HOUR_MS)
    if states_out is not None:
        states_out.update(loop.states)
    final = profits()
    profits_at += [final for _ in marks]  # marks at or after the end
    out = loop.out
    return LoopResult(
        final,
        np.array([shop.ledger(i).discount for i in range(n)]),
        shop.stats.events,
        out.decisions,
        out.offers,
        out.outcomes,
        loop.purchases,
        engine.snapshot.version if engine else 0,
        loop.suppressions,
        loop.committed_by_day(),
        loop.withheld_cost,
        loop.gated_users,
        profits_at,
    )


class _Loop:
    def __init__(self, engine: DecisionEngine | None, shop: Shop, publish_every: int) -> None:
        self.engine = engine
        self.shop = shop
        self.publish_every = publish_every
        self.states: dict[str, UserState] = {}
        self.out = EngineOutput()
        self._labels = 0
        self.purchases: list[ClickEvent] = []
        self.suppressions: Counter[str] = Counter()
        self.withheld_cost: dict[str, float] = {}
        self.gated_users: Counter[str] = Counter()
        # One ledger: the loop is one partition (evaluate gives it the whole daily budget).
        self.ledger = BudgetLedger()
        self._committed: dict[int, float] = {}

    def step(self, events: list[ClickEvent]) -> None:
        self.purchases += (e for e in events if e.type is EventType.PURCHASE)
        engine = self.engine
        if engine is None:
            return
        out = self.out
        for event in events:
            state = self.states.get(event.user_id)
            if state is None:
                state = self.states[event.user_id] = engine.new_state()
            offers = len(out.offers)
            engine.handle(state, event, out, self.ledger)
            for offer in out.offers[offers:]:
                self.shop.receive_offer(offer, event.ts)
            if engine.config.daily_budget is not None:
                self._committed[self.ledger.day] = self.ledger.spent
            self._learn()
        for suppression in out.suppressions:
            self.suppressions[suppression.reason] += 1
            reason = suppression.reason
            self.withheld_cost[reason] = self.withheld_cost.get(reason, 0.0) + (
                suppression.expected_cost
            )
            if suppression.reason == "abuse":
                self.gated_users[suppression.user_id] += 1
        out.suppressions.clear()

    def committed_by_day(self) -> list[float]:
        return [round(self._committed[day], 2) for day in sorted(self._committed) if day >= 0]

    def sweep(self, now: int) -> None:
        engine = self.engine
        if engine is None:
            return
        for user_id, state in self.states.items():
            if state.open_decisions:
                engine.close_expired(state, user_id, now, self.out)
        self._learn()

    def _learn(self) -> None:
        engine, training, searches = self.engine, self.out.training, self.out.searches
        if engine is None:
            return
        snapshot = engine.snapshot
        for search in searches:  # the query model: no label, no snapshot of its own
            snapshot.learn_example(search)
        searches.clear()
        if not training:
            return
        for example in training:
            snapshot.learn_example(example)
            self._labels += 1
            if self._labels % self.publish_every == 0:
                snapshot.number_and_name(snapshot.version + 1)
        training.clear()

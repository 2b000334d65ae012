"""How well searches tell what users want: the query model, and interest with and without it.

    python -m benchmarks.search_interest [users] [days] [seed]

The simulated shop runs ``days`` through the engine's own per-event path twice, with the same
seed and an engine that never offers (so both runs see the same events): once with the query
model learning from searches (``streams.search_interest``), once with it deaf (nothing learned,
so searches add no interest at decisions). It prints, against the simulator's truth:

- the query model on the second half's searches: the share it reads at all, and of those the
  share whose strongest category is the one the simulator drew the query from; and how often
  the category looked at next (its training label) is that category;
- at every decision point: how often the user's category of highest interest is the one
  they look at most (their preference), with and without the model;
- at decision points with two or more categories in the cart (where a category offer on the
  user's interest has a choice): how often its target is the cart's category the user spends
  most on, with and without the model.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace

from agents.app import engine_config
from promo.settings import Settings
from schemas.decisions import NO_OFFER
from schemas.events import ClickEvent
from simulator.closed_loop import play
from simulator.evaluate import START_MS
from simulator.population import Population, build_population
from simulator.shop import DAY_MS, Shop
from streams.budget import BudgetLedger
from streams.catalogue import DEFAULT_CATALOGUE, INTEREST, OfferSpec
from streams.engine import DecisionContext, DecisionEngine, EngineOutput
from streams.models import ModelSnapshot
from streams.policy import Choice
from streams.search_interest import QueryCategories
from streams.user_state import UserState

#: A category offer on the user's interest: what makes the engine pick a target.
ON_INTEREST = OfferSpec("cat30", "percent_off", 30.0, "30 % off {category}", "C30", INTEREST)


class _Silent:
    """Decides nothing."""

    def choose(self, context: DecisionContext) -> Choice:
        return Choice(NO_OFFER, 1.0, {}, {})


class _Deaf(QueryCategories):
    """A query model that never learns: searches add no interest."""

    def learn(self, query: str, category: str) -> None:
        return


@dataclass
class _Notes:
    """What the query model read in each search from ``after_ms`` on, its training labels
    from then, and each category offer's target where the cart gave it a choice."""

    after_ms: int
    #: (query, strongest category read, or "" for none)
    reads: list[tuple[str, str]] = field(default_factory=list)
    #: (query, the category looked at next)
    labels: list[tuple[str, str]] = field(default_factory=list)
    #: (user id, the category offer's target, the cart's categories)
    targets: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)


class _Engine(DecisionEngine):
    """The engine, taking notes."""

    notes: _Notes
    _user = ""

    def handle(
        self,
        state: UserState,
        event: ClickEvent,
        out: EngineOutput,
        ledger: BudgetLedger | None = None,
    ) -> None:
        paired = len(out.searches)
        self._user = event.user_id
        if event.ts >= self.notes.after_ms and event.query and event.category is None:
            read = self.snapshot.queries.categories(event.query)
            self.notes.reads.append((event.query, next(iter(read), "")))
        super().handle(state, event, out, ledger)
        if event.ts >= self.notes.after_ms:
            self.notes.labels += ((e.query, e.category) for e in out.searches[paired:])

    def _applicable(
        self, state: UserState, interest: dict[str, float]
    ) -> tuple[tuple[OfferSpec, ...], dict[str, str], dict[str, float]]:
        offers, targets, scopes = super()._applicable(state, interest)
        cart = tuple(state.features.cart_category_shares())
        if len(cart) > 1 and "cat30" in targets:
            self.notes.targets.append((self._user, targets["cat30"], cart))
        return offers, targets, scopes


def _run(
    population: Population, seed: int, days: float, deaf: bool
) -> tuple[_Engine, list[tuple[str, str]]]:
    config = replace(engine_config(Settings()), catalogue=(*DEFAULT_CATALOGUE, ON_INTEREST))
    built: list[_Engine] = []

    def build(shop: Shop) -> DecisionEngine:
        snapshot = ModelSnapshot.initial(config.actions, 6, 42)
        if deaf:
            snapshot.queries = _Deaf()
        engine = _Engine(config, snapshot, _Silent())
        engine.notes = _Notes(START_MS + round(days * DAY_MS / 2))
        built.append(engine)
        return engine

    result = play(population, build, seed=seed, days=days, start_ms=START_MS)
    return built[0], [(d.user_id, d.interest_category) for d in result.decisions]


def main(users: int = 5_000, days: float = 14.0, seed: int = 1) -> dict[str, object]:
    population = build_population(users, seed)
    names = population.assortment.categories
    terms = population.assortment.search_terms
    of_query = {term: names[c] for c, words in enumerate(terms) for term in words}
    traits = {u.user_id: u for u in population.users}

    def looks_most(user_id: str) -> str:
        cdf = traits[user_id].category_cdf
        weights = [b - a for a, b in zip((0.0, *cdf[:-1]), cdf, strict=True)]
        return names[max(range(len(weights)), key=weights.__getitem__)]

    def spends_most_on(user_id: str, target: str, cart: tuple[str, ...]) -> bool:
        spend = traits[user_id].category_spend
        return spend[names.index(target)] == max(spend[names.index(c)] for c in cart)

    out: dict[str, object] = {"users": users, "days": days, "seed": seed}
    for arm, deaf in (("with_search_model", False), ("without", True)):
        engine, interest = _run(population, seed, days, deaf)
        notes = engine.notes
        arm_out: dict[str, object] = {
            "decisions": len(interest),
            "interest_is_most_looked_at": _share([c == looks_most(u) for u, c in interest]),
            "category_offer_choices": len(notes.targets),
            "target_is_top_spend_category": _share(
                [spends_most_on(u, t, cart) for u, t, cart in notes.targets]
            ),
        }
        if not deaf:
            read = [(q, c) for q, c in notes.reads if c]
            arm_out |= {
                "searches_second_half": len(notes.reads),
                "searches_read": _share([bool(c) for _, c in notes.reads]),
                "read_correctly": _share([c == of_query.get(q) for q, c in read]),
                "labels_second_half": len(notes.labels),
                "label_is_query_category": _share([c == of_query.get(q) for q, c in notes.labels]),
                "query_model_words": len(engine.snapshot.queries.words),
            }
        out[arm] = arm_out
    return out


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else float("nan")


if __name__ == "__main__":
    args = sys.argv[1:4]
    result = main(
        int(args[0]) if args else 5_000,
        float(args[1]) if len(args) > 1 else 14.0,
        int(args[2]) if len(args) > 2 else 1,
    )
    print(json.dumps(result, indent=2))

"""Interest read from searches (issue 9, item 1): a search pairs with the category looked at
next, the learner learns the pair into the shared query model, and the user's latest searches,
read with the model at each decision, add interest in what they are about, which the category
offer's target and the decision log follow; the state itself never holds a model's reading."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import orjson
import pytest

from schemas import JSON_SCHEMA_DIR
from schemas.codec import encode
from schemas.decisions import Decision
from schemas.events import ClickEvent, EventType
from schemas.training import SearchExample, decode_example
from simulator.closed_loop import play
from simulator.population import build_population
from simulator.shop import Shop
from streams import search_interest
from streams.engine import DecisionEngine, EngineOutput
from streams.learning import learn_batch
from streams.models import ModelSnapshot, _checksum
from streams.search_interest import SEARCH_LINK_MS, QueryCategories
from streams.user_state import UserState
from tests.unit.conftest import FixedOffer, make_engine
from tests.unit.test_category_offers import CATALOGUE, event, run

T0 = 1_700_000_000_000
MINUTE = 60_000
DECISION_SCHEMA = json.loads((JSON_SCHEMA_DIR / "decision.schema.json").read_text())


def view(n: int, ts: int, category: str) -> ClickEvent:
    return event(n, EventType.VIEW, ts, item_id=f"i{n}", category=category, price=5.0)


def test_a_search_pairs_with_the_first_category_looked_at_within_the_link_time() -> None:
    engine = make_engine(triggers=frozenset())
    state, out = run(
        engine,
        [
            event(1, EventType.SEARCH, T0, query="Running shoes"),
            event(2, EventType.REMOVE_FROM_CART, T0 + MINUTE, item_id="x", quantity=1),
            view(3, T0 + 2 * MINUTE, "sports"),
            view(4, T0 + 3 * MINUTE, "fashion"),  # paired already: no second example
        ],
    )
    assert out.searches == [SearchExample("e3", T0 + 2 * MINUTE, "Running shoes", "sports")]
    assert state.searches == [["Running shoes", T0, 0]]  # kept, waiting no more
    # Nothing categorised within the link time: the search is let go, it teaches nothing.
    late = T0 + SEARCH_LINK_MS + 1
    state, out = run(engine, [event(1, EventType.SEARCH, T0, query="tent"), view(2, late, "home")])
    assert out.searches == [] and state.searches == [["tent", T0, 0]]
    # A search waits across a restart: the state carries it.
    state, _ = run(engine, [event(1, EventType.SEARCH, T0, query="tent")])
    again = UserState.from_bytes(state.to_bytes(), engine.config.abandon_after_ms)
    out = EngineOutput()
    engine.handle(again, view(2, T0 + MINUTE, "sports"), out)
    assert [(e.query, e.category) for e in out.searches] == [("tent", "sports")]


def test_a_search_the_platform_categorised_is_an_example_and_interest_at_once() -> None:
    engine = make_engine(triggers=frozenset())
    state, out = run(engine, [event(1, EventType.SEARCH, T0, query="tent", category="sports")])
    assert out.searches == [SearchExample("e1", T0, "tent", "sports")]
    assert state.searches == [] and state.features.top_categories(T0, 1) == [("sports", 1.0)]


def test_the_learner_learns_search_examples_into_the_snapshot_it_publishes() -> None:
    snapshot = ModelSnapshot.initial(("none", "pct10"), n_segments=2, seed=1)
    examples = [(i, encode(SearchExample(f"e{i}", i, "wool socks", "socks"))) for i in range(6)]
    assert learn_batch(snapshot, examples).learned == 6
    assert snapshot.queries.examples == 6 and snapshot.examples_seen == 0  # no decision label
    again = ModelSnapshot.from_bytes(snapshot.to_bytes())
    assert again.queries.categories("socks") == {"socks": 1.0}
    assert isinstance(decode_example(examples[0][1]), SearchExample)
    with pytest.raises(TypeError, match="a JSON object"):
        decode_example(b"[1, 2]")


def test_a_snapshot_from_before_searches_were_learned_loads_with_an_untrained_model() -> None:
    snapshot = ModelSnapshot.initial(("none", "pct10"), n_segments=2, seed=1)
    envelope = orjson.loads(snapshot.to_bytes())
    del envelope["payload"]["queries"]
    envelope["sha256"] = _checksum(envelope["payload"])
    old = ModelSnapshot.from_bytes(orjson.dumps(envelope))
    assert old.queries.examples == 0 and old.queries.categories("socks") == {}


def trained_engine() -> DecisionEngine:
    """Cart decisions over the catalogue with a category offer on the user's interest, and a
    query model that has learned "socks" means socks."""
    engine = make_engine(
        FixedOffer("cat20", propensity=1.0),
        catalogue=CATALOGUE,
        triggers=frozenset({"add_to_cart"}),
    )
    for _ in range(10):
        engine.snapshot.queries.learn("wool socks", "socks")
        engine.snapshot.queries.learn("leather bag", "bags")
    return engine


def cart_after_searching(engine: DecisionEngine, query: str) -> EngineOutput:
    """Two views of bags, three searches for ``query``, then a cart of bags and socks; the
    decision comes at the socks (the bags were in the cart before the engine decided)."""
    state, out = engine.new_state(), EngineOutput()
    state.features.update("add_to_cart", ts=T0 - 1, category="bags", amount=60.0, item_id="b")
    for e in [
        view(1, T0, "bags"),
        view(2, T0 + 1, "bags"),
        event(3, EventType.SEARCH, T0 + 2, query=query),
        event(4, EventType.SEARCH, T0 + 3, query=query),
        event(5, EventType.SEARCH, T0 + 4, query=query),
        event(6, EventType.ADD_TO_CART, T0 + 5, item_id="s", category="socks", price=20.0),
    ]:
        engine.handle(state, e, out)
    return out


def test_searches_move_interest_to_what_they_are_about_and_the_offer_follows() -> None:
    # Bags: three touches (the cart add and two views); socks: the cart add, and three
    # searches the model reads as socks.
    out = cart_after_searching(trained_engine(), "warm wool socks")
    (decision,), (offer,) = out.decisions, out.offers
    assert (offer.target_category, decision.interest_category) == ("socks", "socks")
    jsonschema.validate(orjson.loads(orjson.dumps(decision)), DECISION_SCHEMA)
    # Searches the model cannot read add nothing: the bags keep the user's interest.
    out = cart_after_searching(trained_engine(), "birthday present")
    (decision,), (offer,) = out.decisions, out.offers
    assert (offer.target_category, decision.interest_category) == ("bags", "bags")


def test_the_query_model_needs_evidence_and_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    model = QueryCategories()
    for _ in range(search_interest.MIN_EVIDENCE - 1):
        model.learn("tent", "sports")
    assert model.categories("tent") == {}  # four examples: not yet
    model.learn("tent", "sports")
    assert model.categories("tent") == {"sports": 1.0}
    monkeypatch.setattr(search_interest, "MAX_TERMS", 3)
    for i in range(7):
        model.learn(f"word{i} tent", "sports")
    assert len(model.words) <= 6 and "tent" in model.words  # the most frequent word stays
    assert model.totals["sports"][1] == sum(c.get("sports", 0) for c in model.words.values())


def test_the_state_is_the_same_whatever_query_model_read_the_searches() -> None:
    # A worker replaying events after a crash holds another model version than the one that
    # first saw them: the recovered state, and so the features, must not depend on it.
    events = [
        view(1, T0, "bags"),
        view(6, T0, "bags"),
        event(2, EventType.SEARCH, T0 + 1, query="wool socks"),
        view(3, T0 + 2, "shoes"),
        event(4, EventType.SEARCH, T0 + 3, query="wool socks"),
        event(5, EventType.ADD_TO_CART, T0 + 4, item_id="s", category="socks", price=20.0),
    ]
    quiet = [trained_engine(), trained_engine()]  # no decisions: only the events' effect
    quiet[0].snapshot.queries = QueryCategories()
    for engine in quiet:
        engine.config = replace(engine.config, triggers=frozenset())
    states = [run(engine, events)[0] for engine in quiet]
    assert states[0].searches == [["wool socks", T0 + 1, 0], ["wool socks", T0 + 3, 0]]
    assert states[0].to_bytes() == states[1].to_bytes()
    # ... while the trained model's reading moves the decision's interest, not its features.
    untrained, trained = trained_engine(), trained_engine()
    untrained.snapshot.queries = QueryCategories()
    decisions = [run(engine, events)[1].decisions[-1] for engine in (untrained, trained)]
    assert [d.interest_category for d in decisions] == ["bags", "socks"]
    assert decisions[0].features == decisions[1].features


def test_a_replayed_decision_keeps_the_target_and_interest_it_was_sent_with() -> None:
    engine = trained_engine()
    first = cart_after_searching(engine, "warm wool socks")
    (decision,) = first.decisions
    # After a crash the decision is read back, and the model has since learned otherwise.
    engine = trained_engine()
    for _ in range(50):
        engine.snapshot.queries.learn("wool socks", "bags")
    engine.replays = {decision.decision_id: decision}
    again = cart_after_searching(engine, "warm wool socks")
    # (The stand-in policy says "explored" at propensity 1, which a replay cannot tell.)
    assert [replace(o, reason="") for o in again.offers] == [
        replace(o, reason="") for o in first.offers
    ]
    assert again.offers[0].target_category == "socks"
    assert again.decisions[0].interest_category == decision.interest_category == "socks"


class _Deaf(QueryCategories):
    """A query model that never learns: it reads nothing in any search."""

    def learn(self, query: str, category: str) -> None:
        return


def test_without_a_category_offer_searches_change_no_decision() -> None:
    # The simulated shop, learning as it goes, with a query model that reads its queries or
    # a deaf one: the same decisions (the default catalogue has no target to choose), only
    # the logged interest may differ.
    population = build_population(150, seed=5)
    engines: list[DecisionEngine] = []

    def decisions(deaf: bool) -> list[Decision]:
        def build(shop: Shop) -> DecisionEngine:
            engine = make_engine(FixedOffer("pct10", propensity=0.5))
            if deaf:
                engine.snapshot.queries = _Deaf()
            assortment = population.assortment  # taught what the shop's queries are about
            for category, terms in zip(assortment.categories, assortment.search_terms, strict=True):
                for term in terms * search_interest.MIN_EVIDENCE:
                    engine.snapshot.queries.learn(term, category)
            engines.append(engine)
            return engine

        found = play(population, build, seed=5, days=2, start_ms=T0).decisions
        return [replace(d, interest_category="") for d in found]

    heard, deaf = decisions(False), decisions(True)
    assert heard == deaf and heard
    taught = sum(map(len, population.assortment.search_terms)) * search_interest.MIN_EVIDENCE
    assert engines[0].snapshot.queries.examples > taught  # it learned from the shop's searches
    assert engines[1].snapshot.queries.examples == 0

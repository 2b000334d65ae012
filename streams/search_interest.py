"""What a search is about: its words mapped to categories, learned online from what users did next.

A ``search`` event carries free text (``query``) and rarely a category. The shop's other events
say which categories a user looks at, so the model learns from them: a search followed, within
``SEARCH_LINK_MS`` and before any other search, by a view or cart add of an item in category c
is one example "these terms are about c" (``streams.engine`` finds the pair, the learner learns
it into the shared snapshot). It is a multinomial naive Bayes over the query's words (River's
``BagOfWords`` tokenises), kept as counts so that it learns one example at a time, travels in
the JSON snapshot, and stays bounded: beyond ``MAX_TERMS`` words the rarest are dropped.

A user's latest searches (``SEARCHES_KEPT``, query and time) stay in their state, and are read
with the model at each decision (``with_searches``): each adds to the user's interest in every
category it is about, weighted by the model's posterior and decayed as a view of that category
would be. Only queries with enough evidence behind their words count, so an unknown word or a
model that has barely learned adds nothing. The reading is never folded into the state: the
state stays a function of the user's events alone, whatever model version read them (a worker
that replays a search after a crash holds another version than the one that first saw it),
and it feeds the category offers' target and the decision's ``interest_category``, not the
models' feature vector.

>>> model = QueryCategories()
>>> for _ in range(6):
...     model.learn("Running shoes", "sports")
...     model.learn("rain jacket", "fashion")
>>> model.learn("running shoes", "fashion")  # a user who searched shoes, then looked at jeans
>>> {c: round(p, 2) for c, p in model.categories("running shoes").items()}  # fashion: 0.07
{'sports': 0.93}
>>> model.categories("garden hose")  # no word seen: no interest
{}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from river import feature_extraction

from streams.features import decay

#: A search and the next view or cart add of a categorised item are paired as an example when
#: they are at most this far apart (event time) with no other search between them.
SEARCH_LINK_MS = 10 * 60_000
#: Searches without a category a user's state keeps, newest last, to be read at decisions.
SEARCHES_KEPT = 3
#: Words kept; beyond twice this many, the rarest are dropped down to it (the snapshot is one
#: Kafka record: about 40 bytes a word in its JSON).
MAX_TERMS = 5_000
#: A query's known words must have been seen in at least this many examples together before
#: the model says what the query is about.
MIN_EVIDENCE = 5
#: Categories below this posterior get no interest from the search.
MIN_POSTERIOR = 0.2
#: Laplace smoothing of each category's word counts.
SMOOTHING = 1.0
#: Queries whose reading is kept until the model learns again (shoppers repeat the popular
#: ones, and a worker's model changes only when it adopts a snapshot); beyond it, all go.
CACHED_QUERIES = 10_000

_WORDS = feature_extraction.BagOfWords(lowercase=True, strip_accents=True)


def query_words(query: str) -> dict[str, int]:
    """The query's words and their counts (lower case, accents stripped, two letters or more).

    >>> query_words("Café LATTE latte")
    {'cafe': 1, 'latte': 2}
    """
    return dict(_WORDS.transform_one(query))  # type: ignore[no-untyped-call]


def with_searches(
    interest: dict[str, float],
    searches: Sequence[Sequence[str | int]],
    model: QueryCategories,
    now: int,
) -> dict[str, float]:
    """``interest`` (category -> decayed weight at ``now``) plus what each search
    (``[query, ts, ...]``) is about by ``model``, decayed from its time as a view would be.

    >>> model = QueryCategories()
    >>> for _ in range(5):
    ...     model.learn("tent", "outdoor")
    >>> with_searches({"books": 0.5}, [["tent", 0, 1], ["zzz", 0, 0]], model, now=0)
    {'books': 0.5, 'outdoor': 1.0}
    """
    if not searches:
        return interest
    merged = dict(interest)
    for query, ts, *_ in searches:
        for category, p in model.categories(str(query)).items():
            merged[category] = merged.get(category, 0.0) + decay(p, int(ts), now)
    return merged


def top_interest(interest: dict[str, float]) -> str:
    """The category of highest interest; empty without any.

    >>> top_interest({"books": 0.5, "outdoor": 1.0}), top_interest({})
    ('outdoor', '')
    """
    return max(interest, key=interest.__getitem__) if interest else ""


class QueryCategories:
    """Per category: examples, and how often each word occurred in its examples' queries."""

    def __init__(self) -> None:
        #: word -> category -> occurrences in that category's examples
        self.words: dict[str, dict[str, float]] = {}
        #: category -> [examples, words in them]
        self.totals: dict[str, list[float]] = {}
        self.examples = 0
        self._read: dict[str, dict[str, float]] = {}

    def learn(self, query: str, category: str) -> None:
        """One example: a search with ``query`` led to category ``category``."""
        words = query_words(query)
        if not words:
            return
        self._read.clear()
        self.examples += 1
        total = self.totals.setdefault(category, [0.0, 0.0])
        total[0] += 1
        for word, n in words.items():
            counts = self.words.setdefault(word, {})
            counts[category] = counts.get(category, 0.0) + n
            total[1] += n
        if len(self.words) > 2 * MAX_TERMS:
            self._prune()

    def categories(self, query: str) -> dict[str, float]:
        """P(category | query) for the categories at or above ``MIN_POSTERIOR``, strongest
        first; empty when none of the query's words has been seen in ``MIN_EVIDENCE``
        examples together. The mapping is the model's own (kept for the next search with
        the same words): read it, do not change it."""
        read = self._read.get(query)
        if read is None:
            if len(self._read) >= CACHED_QUERIES:
                self._read.clear()
            read = self._read[query] = self._posterior(query)
        return read

    def _posterior(self, query: str) -> dict[str, float]:
        known = {w: n for w, n in query_words(query).items() if w in self.words}
        if sum(sum(self.words[w].values()) for w in known) < MIN_EVIDENCE:
            return {}
        vocabulary = len(self.words)
        log_posterior = {}
        for category, (examples, size) in self.totals.items():
            score = math.log(examples / self.examples)
            denominator = size + SMOOTHING * vocabulary
            for word, n in known.items():
                seen = self.words[word].get(category, 0.0)
                score += n * math.log((seen + SMOOTHING) / denominator)
            log_posterior[category] = score
        top = max(log_posterior.values())
        weights = {c: math.exp(s - top) for c, s in log_posterior.items()}
        norm = sum(weights.values())
        ranked = sorted(((w / norm, c) for c, w in weights.items()), reverse=True)
        return {c: p for p, c in ranked if p >= MIN_POSTERIOR}

    def _prune(self) -> None:
        """Keep the ``MAX_TERMS`` most frequent words; the others' counts leave the totals."""
        kept = sorted(self.words, key=lambda w: (-sum(self.words[w].values()), w))[:MAX_TERMS]
        keep = set(kept)
        for word in [w for w in self.words if w not in keep]:
            for category, n in self.words.pop(word).items():
                self.totals[category][1] -= n

    def to_state(self) -> dict[str, Any]:
        return {"words": self.words, "totals": self.totals, "examples": self.examples}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> QueryCategories:
        """``None`` (a snapshot from before searches were learned): an untrained model."""
        model = cls()
        if state is not None:
            model.words, model.totals = state["words"], state["totals"]
            model.examples = state["examples"]
        return model

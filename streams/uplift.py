"""What an offer changes, and how sure we are: the uplift model behind the policy.

Two parts, each learned from labelled decisions (bought within the decision's window or not):

- **Baseline**: P(purchase | user, no offer), a River logistic regression on the user's
  scaled log-features (each read within ``MAX_Z`` standard deviations), learned from every
  ``none`` decision (control users, and treated users the policy sent nothing). These are
  plentiful, so a point estimate is fine.
- **Effect of each offer**: a shift on the log-odds scale, estimated per *cell* of users with
  similar behaviour (purchase rate or browsing in 30 days, how they answered past offers,
  the decision point) from counts: buyers among the cell's decisions that took the offer
  against buyers among its decisions that took none, each *against what the baseline model
  expected of those very decisions* (observed / expected). The policy chooses who gets an
  offer from the baseline's prediction, so inside a cell the offered users are not like the
  ones sent nothing: a plain comparison of the two rates credits the offer with the
  difference between them (selection bias; it made offers to users who buy anyway look
  profitable). The same counts calibrate the baseline per cell: its no-offer rate against
  what the model predicted there. The effect is fitted to the buyers by likelihood (a
  logistic model with that no-offer rate as offset, ``_fit_effect``), so a cell of one or
  two decisions says as little as it knows; a cell's own log-odds ratio would not. Each
  cell's effect is shrunk towards the offer's overall effect among the other cells, by as
  much as the cells' scatter says they differ (random effects, estimated from the data),
  and the overall effect itself starts from a sceptical prior centred on *no effect*
  (``EFFECT_PRIOR_SD``). An offer never tried on users like these keeps a wide interval,
  which is what lets the policy stay silent where there is no evidence; an optimistic
  estimate from a handful of lucky decisions is pulled back.

P(purchase | user, offer a) = sigmoid(logit(model) + calibration[cell] + effect[a, cell]).

What an order is worth comes from the realised orders too (``streams.order_value``).

>>> model = UpliftModel(("none", "pct10"))
>>> x = (0.0,) * len(FEATURE_NAMES)
>>> b = model.belief(x, "add_to_cart")
>>> b.effect_mean["pct10"], round(b.effect_var["pct10"], 2)  # no evidence: no effect, wide
(0.0, 1.25)
>>> for i in range(400):
...     model.learn(x, "add_to_cart", "pct10", int(i % 10 < 4), redeemed=True)
...     model.learn(x, "add_to_cart", "none", int(i % 10 < 2), redeemed=False)
>>> b = model.belief(x, "add_to_cart")
>>> abs(b.effect_mean["pct10"] - 0.98) < 0.1  # log-odds: logit(0.4) - logit(0.2) = 0.98
True
>>> b.effect_var["pct10"] < 0.05
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from river import linear_model, optim, preprocessing

from schemas.decisions import NO_OFFER
from streams.feature_vector import FEATURE_INDEX, FEATURE_NAMES, expected_order_value
from streams.order_value import OrderValueModel
from streams.river_state import dump_logistic, dump_scaler, load_logistic, load_scaler

#: Prior on an offer's overall effect: log-odds ~ N(0, 1), "probably changes little".
EFFECT_PRIOR_SD = 1.0
#: How much an offer's effect may differ between cells (log-odds sd) before two cells have
#: evidence to estimate it from; then the data say (``_between_cell_variance``), up to the max.
CELL_SPREAD = 0.5
MAX_CELL_SPREAD = 1.0
#: A cell joins the estimate of how much cells differ once its offered decisions count this
#: many buyers and this many non-buyers: below that its own log-odds ratio is mostly noise
#: and the half-decision correction's bias.
MIN_OUTCOMES = 5
#: Newton steps to fit an effect (it converges in four or five).
NEWTON_STEPS = 20
#: Prior on the share of an offer's purchases that redeem it: Beta(4, 1), i.e. assume most
#: do, so an untried offer is costed as if nearly every buyer uses it.
REDEEM_PRIOR = (4.0, 1.0)
#: Pseudo-decisions pulling a cell's no-offer rate towards what the baseline model predicts
#: there (a small cell's calibration stays near none).
BASELINE_PSEUDO = 20.0
#: The baseline reads each standardised feature within this many standard deviations. A
#: feature that is rarely non-zero has a tiny spread: one clicked offer (log 0.69, where
#: the shop's mean was 0.002 and its sd 0.04) stood 17 sd out, so that a weight of -0.23
#: learnt from a handful of such users took 3.9 off the log-odds of exactly the users who
#: answer offers (P(buy | none) 0.2 % where 6 % bought).
MAX_Z = 3.0

_PURCHASES = FEATURE_INDEX["purchases_30d"]
_VIEWS = FEATURE_INDEX["views_30d"]
_CLICKED = FEATURE_INDEX["offers_clicked_30d"]
_SHOWN = FEATURE_INDEX["offers_shown_30d"]


def cell_of(vector: tuple[float, ...], trigger: str) -> str:
    """The behaviour cell an offer's effect is estimated in.

    Users who bought in the last 30 days are split by how readily they buy (purchases per 10
    product views: a rare buyer is who a discount can move; a regular one buys anyway); users
    who did not, by how much they browse. Then how they answered offers in the last 30 days
    (never shown one, ignored them, clicked one), and the decision point.

    >>> v = [0.0] * len(FEATURE_NAMES)
    >>> v[FEATURE_INDEX["purchases_30d"]], v[FEATURE_INDEX["views_30d"]] = 1.0, 25.0
    >>> cell_of(tuple(v), "cart_return")
    'r2.o0.cart_return'
    """
    purchases, views = vector[_PURCHASES], vector[_VIEWS]
    if purchases > 0:
        rate = 10.0 * purchases / max(views, 1.0)
        history = "r1" if rate < 0.15 else "r2" if rate < 0.6 else "r3"
    else:
        history = "v0" if views <= 10 else "v1" if views <= 40 else "v2"
    # Response to past offers: never shown one, shown but never clicked, clicked.
    response = 2 if vector[_CLICKED] > 0 else 1 if vector[_SHOWN] > 0 else 0
    return f"{history}.o{response}.{trigger}"


def _response_of(cell: str) -> str:
    """The past-offer response part of a cell (``o0``, ``o1``, ``o2``)."""
    return cell.split(".", 2)[1]


def _log_features(vector: tuple[float, ...]) -> dict[str, float]:
    # Counts and amounts are heavy-tailed: log1p keeps a big spender from dominating the fit.
    return {name: math.log1p(max(v, 0.0)) for name, v in zip(FEATURE_NAMES, vector, strict=True)}


@dataclass(frozen=True, slots=True)
class Belief:
    """The model's belief about one user at one decision point.

    ``baseline``: P(purchase | none). An offer adds a log-odds effect with posterior mean
    ``effect_mean[a]`` and variance ``effect_var[a]``.
    """

    baseline: float
    effect_mean: dict[str, float]
    effect_var: dict[str, float]

    def purchase_probability(self, action: str, shift: float = 0.0) -> float:
        """P(purchase | action), the effect moved by ``shift`` posterior standard deviations."""
        if action not in self.effect_mean:
            return self.baseline
        effect = self.effect_mean[action] + shift * math.sqrt(self.effect_var[action])
        return sigmoid(logit(self.baseline) + effect)


class UpliftModel:
    """Baseline purchase model, per-cell offer effects, redemption rate per offer."""

    def __init__(self, actions: tuple[str, ...], learning_rate: float = 0.02) -> None:
        self.actions = actions
        self.learning_rate = learning_rate
        self._scaler = preprocessing.StandardScaler()
        self._baseline = linear_model.LogisticRegression(
            optimizer=optim.SGD(learning_rate), intercept_lr=learning_rate, l2=1e-4
        )
        #: (action, cell) -> [decisions, buyers, buyers the baseline model expected of them
        #: (sum of its P(purchase | none) when each was learned)]; action "none" included
        self.counts: dict[tuple[str, str], list[float]] = {}
        #: action -> [decisions, buyers] over all cells
        self.totals: dict[str, list[int]] = {a: [0, 0] for a in actions}
        #: labels learned so far; the overall effects are recomputed only when it moves
        self.labels = 0
        self._overall: dict[tuple[str, str], tuple[int, tuple[float, float, float]]] = {}
        self._cells: dict[tuple[str, str], tuple[int, tuple[float, float]]] = {}
        #: (action, response) -> the cells it has decisions in; rebuilt when cells are added
        self._groups: dict[tuple[str, str], list[str]] = {}
        #: offer -> [purchases, redemptions] among labelled decisions that took it
        self.redemptions: dict[str, list[int]] = {a: [0, 0] for a in actions[1:]}
        self.order_values = OrderValueModel()

    def to_state(self) -> dict[str, Any]:
        """What the model learned, as JSON-ready data (the overall effects are a cache)."""
        return {
            "actions": list(self.actions),
            "learning_rate": self.learning_rate,
            "scaler": dump_scaler(self._scaler),
            "baseline": dump_logistic(self._baseline),
            "counts": [[a, cell, *counts] for (a, cell), counts in self.counts.items()],
            "totals": self.totals,
            "labels": self.labels,
            "redemptions": self.redemptions,
            "order_values": self.order_values.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> UpliftModel:
        model = cls(tuple(state["actions"]), state["learning_rate"])
        load_scaler(model._scaler, state["scaler"])
        load_logistic(model._baseline, state["baseline"])
        model.counts = {(a, cell): counts for a, cell, *counts in state["counts"]}
        model.totals = state["totals"]
        model.labels = state["labels"]
        model.redemptions = state["redemptions"]
        model.order_values = OrderValueModel.from_state(state.get("order_values"))
        return model

    def belief(self, vector: tuple[float, ...], trigger: str) -> Belief:
        cell = cell_of(vector, trigger)
        a0, b0 = self._no_offer_rate(cell, self._predict(_log_features(vector)))
        means, variances = {}, {}
        for action in self.actions[1:]:
            means[action], variances[action] = self._effect(action, cell)
        return Belief(_clip(a0 / (a0 + b0)), means, variances)

    def order_value(self, vector: tuple[float, ...], trigger: str) -> float:
        """What an order by this user would be worth, before any coupon: the features'
        guess, as the realised orders of users like this one revise it."""
        guess = expected_order_value(vector)
        return self.order_values.predict(cell_of(vector, trigger), guess=guess)

    def _predict(self, raw: dict[str, float]) -> float:
        """The baseline model's P(purchase | none), before the cell's calibration."""
        proba = self._baseline.predict_proba_one(self._scaled(raw))  # type: ignore[no-untyped-call]
        return _clip(float(proba.get(True, 0.5)))

    def _scaled(self, raw: dict[str, float]) -> dict[str, float]:
        """The standardised features the baseline reads, each within ``MAX_Z`` sd."""
        scaled = self._scaler.transform_one(raw)  # type: ignore[no-untyped-call]
        return {name: min(max(z, -MAX_Z), MAX_Z) for name, z in scaled.items()}

    def _no_offer_rate(self, cell: str, predicted: float) -> tuple[float, float]:
        """Beta(a, b) of the cell's no-offer purchase rate for decisions the model gives
        ``predicted``: the model, moved on the log-odds scale by how the cell's ``none``
        decisions bought against what it expected of them (``BASELINE_PSEUDO`` pulling a
        small cell towards the model)."""
        n0, k0, e0 = self.counts.get((NO_OFFER, cell), (0, 0, 0.0))
        expected = _clip(e0 / n0) if n0 else predicted
        a0 = k0 + BASELINE_PSEUDO * expected
        b0 = n0 - k0 + BASELINE_PSEUDO * (1.0 - expected)
        rate = sigmoid(logit(predicted) + math.log(a0 / b0) - logit(expected))
        # The same evidence (a0 + b0 decisions), centred on this prediction.
        return rate * (a0 + b0), (1.0 - rate) * (a0 + b0)

    def _effect(self, action: str, cell: str) -> tuple[float, float]:
        """Posterior mean and variance of the offer's log-odds effect in ``cell``: the
        overall effect of its response group (without this cell) as the prior, the cell's
        own decisions as the likelihood."""
        cached = self._cells.get((action, cell))
        if cached is not None and cached[0] == self.labels:
            return cached[1]
        overall, overall_var, spread = self._overall_effect(action, _response_of(cell))
        evidence = self._evidence(action, cell)
        if evidence is None:
            result = overall, overall_var + spread
        else:
            # Counted in the prior and again as the likelihood, one lucky cell, the only one
            # an offer had been tried in, came out twice as sure of itself.
            overall, overall_var = evidence.removed_from(overall, overall_var, spread)
            result = _fit_effect([(evidence, 0.0)], overall, overall_var + spread)
        self._cells[(action, cell)] = (self.labels, result)
        return result

    def _overall_effect(self, action: str, response: str) -> tuple[float, float, float]:
        """The offer's effect across the cells of users who answered past offers alike
        (``response``: never shown one, ignored them, clicked one), and how much those cells
        differ (random effects).

        Pooled by response because that is where effects differ most: a user who clicked an
        offer is who an offer moves, one who ignored several is not; pooling them all pulled
        the few clickers' cells towards everyone else's (no) effect, and lent everyone else
        the clickers' effect.

        The effect is fitted to the cells' buyers by likelihood (``_fit_effect``), not by
        averaging each cell's own log-odds ratio: a cell of one or two decisions has no
        honest log-odds of its own (with the usual half-decision correction, one decision
        without a purchase where 8 % buy reads as +1.25, one with a purchase as +3.6, and
        a dozen such cells added up to a confident effect of +0.9 that the offers did not
        have). The between-cell variance comes from the cells with enough buyers and
        non-buyers to estimate it (DerSimonian-Laird): if their estimates scatter no more
        than their own noise explains, cells are pulled hard towards the overall effect, and
        a lucky cell cannot win the policy's argmax (the optimizer's curse); where cells
        really differ, each keeps its own. The overall effect starts from the sceptical
        prior centred on no effect.
        """
        cached = self._overall.get((action, response))
        if cached is not None and cached[0] == self.labels:
            return cached[1]
        if sum(map(len, self._groups.values())) != len(self.counts):
            self._groups = {}
            for a, cell in self.counts:
                self._groups.setdefault((a, _response_of(cell)), []).append(cell)
        evidence = [
            e
            for cell in self._groups.get((action, response), ())
            if (e := self._evidence(action, cell))
        ]
        spread = _between_cell_variance(
            [e.log_odds_ratio() for e in evidence if min(e.buyers, e.non_buyers) >= MIN_OUTCOMES]
        )
        # From the last fit: a label or two later, Newton is there in a step.
        start = cached[1][0] if cached is not None else 0.0
        fit = _fit_effect([(e, spread) for e in evidence], 0.0, EFFECT_PRIOR_SD**2, start=start)
        result = (*fit, spread)
        self._overall[(action, response)] = (self.labels, result)
        return result

    def _evidence(self, action: str, cell: str) -> _Evidence | None:
        """The decisions of ``cell`` that took the offer, against the no-offer rate of *these*
        decisions: the baseline model's mean prediction for them, calibrated by the cell's
        ``none`` decisions, so that whom the policy chose to offer does not pass for the
        offer's effect."""
        treated = self.counts.get((action, cell))
        if not treated or treated[0] == 0:
            return None
        n1, k1, e1 = treated
        a0, b0 = self._no_offer_rate(cell, _clip(e1 / n1))
        return _Evidence(n1, k1, math.log(a0 / b0), 1.0 / a0 + 1.0 / b0)

    def redemption_rate(self, action: str) -> float:
        """Posterior mean share of this offer's purchases that used its coupon."""
        bought, redeemed = self.redemptions.get(action, (0, 0))
        a, b = REDEEM_PRIOR
        return (a + redeemed) / (a + b + bought)

    def learn(
        self,
        vector: tuple[float, ...],
        trigger: str,
        action: str,
        label: int,
        *,
        redeemed: bool,
        order_value: float = 0.0,
    ) -> None:
        if action not in self.totals:
            return  # an offer since removed from the catalogue: its label teaches nothing now
        self.labels += 1
        raw = _log_features(vector)
        where = cell_of(vector, trigger)
        if label and order_value > 0:
            self.order_values.learn(where, guess=expected_order_value(vector), order=order_value)
        cell = self.counts.setdefault((action, where), [0, 0, 0.0])
        cell[0] += 1
        cell[1] += int(bool(label))
        cell[2] += self._predict(raw)  # before learning from it: what was expected
        total = self.totals[action]
        total[0] += 1
        total[1] += int(bool(label))
        if action == self.actions[0]:
            self._scaler.learn_one(raw)  # type: ignore[no-untyped-call]
            self._baseline.learn_one(self._scaled(raw), bool(label))
        elif label and action in self.redemptions:
            bought = self.redemptions[action]
            bought[0] += 1
            bought[1] += int(redeemed)


@dataclass(frozen=True, slots=True)
class _Evidence:
    """A cell's decisions that took an offer: ``buyers`` of ``decisions`` bought, where
    without the offer the log-odds of buying would have been ``offset`` (variance
    ``offset_var``: it is estimated too)."""

    decisions: float
    buyers: float
    offset: float
    offset_var: float

    @property
    def non_buyers(self) -> float:
        return self.decisions - self.buyers

    def tempered(self, effect: float, spread: float) -> tuple[float, float, float]:
        """At ``effect``: the purchase probability, the log-likelihood's curvature, and the
        weight that tempers it to 1 / (1 / curvature + offset_var + spread)."""
        p = sigmoid(self.offset + effect)
        curvature = self.decisions * p * (1.0 - p)
        return p, curvature, 1.0 / (1.0 + curvature * (self.offset_var + spread))

    def removed_from(self, mean: float, var: float, spread: float) -> tuple[float, float]:
        """A fitted effect (``_fit_effect`` with this cell at ``spread``) as it would be
        without this cell: its share of the fit's gradient and curvature taken out."""
        p, curvature, weight = self.tempered(mean, spread)
        precision = 1.0 / var - weight * curvature
        return mean - weight * (self.buyers - self.decisions * p) / precision, 1.0 / precision

    def log_odds_ratio(self) -> tuple[float, float]:
        """The cell's own estimate of the effect and its variance (the half-decision
        correction): sound only with several buyers and non-buyers."""
        a1, b1 = self.buyers + 0.5, self.non_buyers + 0.5
        return math.log(a1 / b1) - self.offset, 1.0 / a1 + 1.0 / b1 + self.offset_var


def _fit_effect(
    cells: list[tuple[_Evidence, float]],
    prior_mean: float,
    prior_var: float,
    *,
    start: float | None = None,
) -> tuple[float, float]:
    """Posterior mode and variance (Laplace) of a log-odds effect with a normal prior, given
    cells of offered decisions, each ``(evidence, spread)``: its buyers are binomial at
    sigmoid(offset + effect + the cell's own deviation), the deviation of variance
    ``spread``. Each cell's log-likelihood is tempered so that its curvature (the precision
    it lends the effect) is 1 / (1 / information + offset_var + spread): a cell never says
    more than its no-offer rate and the cells' differences allow. ``start``: where Newton
    starts (the last fit, when a few labels have come since).

    >>> none = _Evidence(0.0, 0.0, -2.4, 0.0)
    >>> _fit_effect([(none, 0.0)], 0.0, 1.0)  # no decisions: the prior
    (0.0, 1.0)
    >>> lucky = _Evidence(1.0, 1.0, -2.4, 0.0)  # one decision, and it bought
    >>> mean, var = _fit_effect([(lucky, 0.0)], 0.0, 1.0)
    >>> round(mean, 2), round(var, 2)  # hopeful, and very unsure
    (0.83, 0.88)
    >>> unlucky = _Evidence(1.0, 0.0, -2.4, 0.0)  # one that did not: a little against
    >>> round(_fit_effect([(unlucky, 0.0)], 0.0, 1.0)[0], 2)
    -0.08
    >>> many = _Evidence(1000.0, 250.0, -2.4, 0.0)  # 25 % where 8.3 % buy without it
    >>> round(_fit_effect([(many, 0.0)], 0.0, 1.0)[0], 2)  # logit(0.25) + 2.4, a hair under
    1.29
    """
    effect = prior_mean if start is None else start
    weights = [1.0] * len(cells)
    for _ in range(2):  # the weights depend on the curvature at the effect: refit once
        for _ in range(NEWTON_STEPS):
            gradient, information = (prior_mean - effect) / prior_var, 1.0 / prior_var
            for (cell, _), w in zip(cells, weights, strict=True):
                p = sigmoid(cell.offset + effect)
                gradient += w * (cell.buyers - cell.decisions * p)
                information += w * cell.decisions * p * (1.0 - p)
            step = gradient / information
            effect += min(max(step, -2.0), 2.0)  # the log-likelihood is concave; no overshoot
            if abs(step) < 1e-9:
                break
        weights = [cell.tempered(effect, spread)[2] for cell, spread in cells]
    at_effect = (cell.tempered(effect, spread) for cell, spread in cells)
    return effect, 1.0 / (1.0 / prior_var + sum(c * w for _, c, w in at_effect))


def _between_cell_variance(estimates: list[tuple[float, float]]) -> float:
    """DerSimonian-Laird estimate of the variance between cells' true effects.

    >>> _between_cell_variance([(0.0, 0.1), (0.05, 0.1), (-0.05, 0.1)])  # noise explains all
    0.0
    >>> round(_between_cell_variance([(-1.0, 0.01), (1.0, 0.01), (0.0, 0.01)]), 2)
    0.99
    """
    if len(estimates) < 2:
        return CELL_SPREAD**2
    weights = [1.0 / var for _, var in estimates]
    total = sum(weights)
    mean = sum(w * v for w, (v, _) in zip(weights, estimates, strict=True)) / total
    q = sum(w * (v - mean) ** 2 for w, (v, _) in zip(weights, estimates, strict=True))
    scale = total - sum(w * w for w in weights) / total
    return min(max(0.0, (q - (len(estimates) - 1)) / scale), MAX_CELL_SPREAD**2)


def _clip(p: float) -> float:
    return min(max(p, 1e-4), 1.0 - 1e-4)


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))

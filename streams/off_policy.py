"""Off-policy evaluation: what a deterministic target policy would have earned per decision.

The reference implementation (numpy, from the rows) of the estimators that
``promo.off_policy`` computes in ClickHouse SQL; a test holds the two to 1e-9. For each logged
decision ``i``: the logged action ``a_i``, taken with probability ``p_i`` (``propensity``),
the reward ``r_i`` that followed, the target policy's action ``t_i`` and a reward model
``q_i(a)`` (its prediction for action ``a`` in that decision's context). With
``w_i = 1{a_i = t_i} / p_i`` and ``n`` rows::

    IPS   = Σ w_i r_i / n                          se² = s²(w r) / n
    SNIPS = Σ w_i r_i / Σ w_i                      se² = Σ w_i² (r_i - SNIPS)² / (Σ w_i)²
    DR    = Σ (q_i(t_i) + w_i (r_i - q_i(a_i))) / n  se² = s²(q(t) + w (r - q(a))) / n

``s²`` is the sample variance (n - 1) of the per-row terms; SNIPS's is the delta method's
(ratio estimator). Intervals are ``value ± z se`` (normal approximation).

Read these as descriptive, for three reasons:

- **Independence.** Every decision is one sample. Contact caps make which decision points
  exist depend on the policy that ran, and one purchase converts every open decision of its
  user, so the decisions of one user are neither independent nor what the target policy would
  have faced. Intervals are optimistic; evaluate per user or session for decisions that matter.
- **Support.** IPS and SNIPS are unbiased only where the logging policy could have taken the
  target's action. A row logged with certainty (``p = 1``: a served, not explored, decision or
  a control decision) and another action is ``unsupported``: IPS counts 0 there, SNIPS leaves
  it out, DR falls back on the reward model. Many unsupported rows make IPS and SNIPS biased
  (towards 0 and towards the supported rows) and DR as good as its model there.
- **Reward model.** DR stays unbiased on supported rows whatever ``q`` is; a good ``q`` only
  narrows it. ``q`` here is the logged model's purchase probability (see ``modelled_reward``).

>>> rewards = [10.0, 0.0, 4.0, 0.0]
>>> e = estimate_policy_value(
...     rewards, propensities=[0.5, 1.0, 1.0, 0.25],
...     logged_actions=["pct10", "none", "pct10", "pct10"],
...     target_actions=["pct10"] * 4,
...     q_logged=[3.0, 1.0, 3.0, 2.0], q_target=[3.0, 3.0, 3.0, 2.0])
>>> e.n, e.matched, e.unsupported, round(e.effective_sample_size, 4)
(4, 3, 1, 2.3333)
>>> round(e.ips.value, 4), round(e.snips.value, 4), round(e.dr.value, 4)
(6.0, 3.4286, 4.5)
>>> round(e.ips.low, 4), round(e.ips.high, 4)
(-3.3313, 15.3313)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from schemas.decisions import NO_OFFER
from streams.catalogue import OfferSpec
from streams.evaluation import Estimate

_NAN = float("nan")

#: Per-row numbers: a list or a numpy array.
Floats = Sequence[float] | npt.NDArray[np.float64]


def net_profit(
    revenue: float, discount: float, gross_margin: float, order_margin: float | None = None
) -> float:
    """The reward: the order's gross margin, ``order_margin`` when known, else
    ``m * (revenue + discount)``, minus the discount (conventions of ``streams.evaluation``).

    >>> net_profit(90.0, 10.0, gross_margin=0.3)
    20.0
    >>> net_profit(90.0, 10.0, gross_margin=0.3, order_margin=45.0)
    35.0
    """
    gross = gross_margin * (revenue + discount) if order_margin is None else order_margin
    return gross - discount


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """A deterministic policy to evaluate: one action everywhere, the logged serving choice,
    or the shadow policy's logged choice.

    ``action=None`` is the serving choice: the decision's logged ``policy_offer``. That offer
    is the policy's own draw (exploration included; for treated decisions it *is* the logged
    action), so this target shares the logging policy's randomness: weighting by
    ``1 / propensity`` would count each draw as if the target had chosen it independently.
    Its rows enter with propensity 1 (``propensity_for``): a treated decision counts its own
    reward, a control decision only where the policy would have sent nothing.

    ``shadow=True`` is the shadow policy's choice (``shadow_offer``): a candidate that decided
    beside the serving one without exploring, so its choice does not depend on the serving
    policy's draw and the usual ``1 / propensity`` weighting holds. Only decisions where a
    shadow ran enter (``applies_to``).

    >>> [t.name for t in (TargetPolicy.never(), TargetPolicy.always("pct10"),
    ...                   TargetPolicy.serving_choice(), TargetPolicy.shadow_choice())]
    ['none', 'always pct10', 'serving choice', 'shadow choice']
    >>> TargetPolicy.serving_choice().action_for("pct20"), TargetPolicy.never().action_for("pct20")
    ('pct20', 'none')
    >>> TargetPolicy.shadow_choice().action_for("pct20", shadow_offer="none")
    'none'
    """

    name: str
    action: str | None
    shadow: bool = False

    @classmethod
    def never(cls) -> TargetPolicy:
        return cls(NO_OFFER, NO_OFFER)

    @classmethod
    def always(cls, code: str) -> TargetPolicy:
        return cls(f"always {code}", code)

    @classmethod
    def serving_choice(cls) -> TargetPolicy:
        return cls("serving choice", None)

    @classmethod
    def shadow_choice(cls) -> TargetPolicy:
        return cls("shadow choice", None, shadow=True)

    @property
    def follows_serving(self) -> bool:
        return self.action is None and not self.shadow

    def applies_to(self, shadow_offer: str) -> bool:
        """Whether a decision enters this target's estimate (the shadow's: where one ran)."""
        return not self.shadow or shadow_offer != ""

    def action_for(self, policy_offer: str, shadow_offer: str = "") -> str:
        """The target's action for a decision with these logged offers."""
        if self.shadow:
            return shadow_offer
        return policy_offer if self.action is None else self.action

    def propensity_for(self, propensity: float) -> float:
        """The propensity to weight by: 1 for the serving choice (see the class docstring)."""
        return 1.0 if self.follows_serving else propensity


def modelled_reward(
    action: str,
    purchase_probs: Mapping[str, float],
    order_value: float,
    *,
    catalogue: Sequence[OfferSpec],
    gross_margin: float,
) -> tuple[float, float]:
    """The reward model ``q(x, a)`` of DR, for net profit and for conversion.

    Conversion: the logged ``P(buy | a)``. Net profit: ``P(buy | a) * (m * v - cost of a)``,
    ``v`` the logged expected order value (before discount) and the cost what ``a``'s coupon
    takes off an order of ``v`` (``OfferSpec.cost``), as if every buyer under ``a`` redeemed
    it. An action the decision did not score (or scored ``nan``), or an offer no longer in the
    catalogue, gets probability 0, resp. cost 0.

    >>> from streams.catalogue import DEFAULT_CATALOGUE
    >>> modelled_reward("pct10", {"none": 0.1, "pct10": 0.2}, 80.0,
    ...                 catalogue=DEFAULT_CATALOGUE, gross_margin=0.3)
    (3.2, 0.2)
    """
    p = purchase_probs.get(action, 0.0)
    p = 0.0 if math.isnan(p) else p
    cost = next((o.cost(order_value) for o in catalogue if o.code == action), 0.0)
    return p * (gross_margin * order_value - cost), p


@dataclass(frozen=True, slots=True)
class OffPolicyEstimate:
    """IPS, SNIPS and DR estimates of one target's mean reward per decision.

    ``matched``: rows whose logged action is the target's (``w > 0``); ``unsupported``: rows
    logged with certainty and another action (IPS sees 0 there, DR only its model);
    ``effective_sample_size``: ``(Σw)² / Σw²``, how many rows the weighted estimate is worth.
    """

    n: int
    matched: int
    unsupported: int
    effective_sample_size: float
    ips: Estimate
    snips: Estimate
    dr: Estimate


def estimate_policy_value(
    rewards: Floats,
    propensities: Floats,
    logged_actions: Sequence[str],
    target_actions: Sequence[str],
    q_logged: Floats,
    q_target: Floats,
    confidence: float = 0.95,
) -> OffPolicyEstimate:
    """IPS, SNIPS and DR of a deterministic target from logged rows (formulas: module docstring).

    ``q_logged[i]`` and ``q_target[i]`` are the reward model's predictions for the logged and
    the target action of row ``i``. Intervals are ``nan`` with fewer than two rows, SNIPS is
    ``nan`` when no row matched.
    """
    r = np.asarray(rewards, dtype=float)
    p = np.asarray(propensities, dtype=float)
    q_a = np.asarray(q_logged, dtype=float)
    q_t = np.asarray(q_target, dtype=float)
    if len(logged_actions) != len(r) or len(target_actions) != len(r):
        raise ValueError("logged_actions and target_actions must be as long as rewards")
    if not r.shape == p.shape == q_a.shape == q_t.shape or r.ndim != 1:
        raise ValueError("rewards, propensities, q_logged and q_target must be 1-D, one length")
    if np.any(~(p > 0)) or np.any(p > 1):
        raise ValueError("propensities must be in (0, 1]")
    same = np.array([a == t for a, t in zip(logged_actions, target_actions, strict=True)], bool)
    n = len(r)
    w = np.where(same, 1.0 / p, 0.0)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    wr = w * r
    dr_terms = q_t + w * (r - q_a)
    w_sum = float(w.sum())
    w_sq = float((w * w).sum())
    snips = float(wr.sum()) / w_sum if w_sum > 0 else _NAN
    snips_se = math.sqrt(float((w * w * (r - snips) ** 2).sum())) / w_sum if w_sum > 0 else _NAN
    return OffPolicyEstimate(
        n=n,
        matched=int(same.sum()),
        unsupported=int((~same & (p == 1.0)).sum()),
        effective_sample_size=w_sum * w_sum / w_sq if w_sq > 0 else 0.0,
        ips=_mean_estimate(wr, z),
        snips=normal_interval(snips, snips_se if n > 1 else _NAN, z),
        dr=_mean_estimate(dr_terms, z),
    )


def normal_interval(value: float, standard_error: float, z: float) -> Estimate:
    """``value ± z * standard_error``; ``nan`` bounds when the error is not finite.

    >>> normal_interval(1.0, 0.5, 2.0)
    Estimate(value=1.0, low=0.0, high=2.0)
    """
    if not math.isfinite(standard_error):
        return Estimate(value, _NAN, _NAN)
    return Estimate(value, value - z * standard_error, value + z * standard_error)


def _mean_estimate(terms: npt.NDArray[np.float64], z: float) -> Estimate:
    if len(terms) == 0:
        return Estimate(_NAN, _NAN, _NAN)
    se = math.sqrt(float(terms.var(ddof=1)) / len(terms)) if len(terms) > 1 else _NAN
    return normal_interval(float(terms.mean()), se, z)

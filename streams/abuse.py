"""Abuse gating: a per-user score of coupon hunting, and the gate that withholds offers.

A coupon hunter buys as often with our offers as without and pays with a coupon whenever
they can: ours when we sent one, otherwise a code from a coupon site or one passed on from
another account. An offer to them buys nothing and costs its discount. What gives them
away is that their purchases are paid with codes *we never sent them*; an ordinary user
uses one now and then, a hunter almost always.

The score is the posterior mean of the share of a user's purchases (30 days) paid with
such a code, under a Beta prior (``ABUSE_PRIOR``: mean 0.2, worth 2.5 purchases), so one
coded purchase is not yet a verdict and a long record of honest purchases keeps the score
low. A decision whose user scores at or above the threshold (``PROMO_ABUSE_THRESHOLD``)
sends nothing: the decision is logged with ``chosen_offer = none`` and a suppression with
reason ``abuse``. The score is a per-user count update (no shared model, nothing in the
model snapshot): River's ``anomaly.HalfSpaceTrees`` over the same behaviour and more
(clicks without browsing, cart churn) separated hunters less well in the simulator
(README, "Abuse gating").

>>> abuse_score(unsent_codes=0, purchases=0)
0.2
>>> round(abuse_score(unsent_codes=1, purchases=1), 3), round(abuse_score(2, 2), 3)
(0.429, 0.556)
>>> round(abuse_score(unsent_codes=1, purchases=6), 3)  # one code among honest purchases
0.176
>>> gates_user(abuse_score(2, 2), threshold=0.5), gates_user(abuse_score(2, 2), threshold=OFF)
(True, False)
"""

from __future__ import annotations

#: Beta(alpha, beta) prior on the share of a user's purchases paid with a code we never sent.
ABUSE_PRIOR = (0.5, 2.0)
#: The threshold that gates nobody: the score, a posterior mean under a prior with
#: ``beta > 0``, never reaches 1.
OFF = 1.0


def abuse_score(unsent_codes: int, purchases: int) -> float:
    """Posterior mean share of purchases paid with a code the engine never sent the user.

    ``unsent_codes`` counts such purchases among ``purchases`` (the same window).
    """
    alpha, beta = ABUSE_PRIOR
    codes = min(max(unsent_codes, 0), max(purchases, 0))
    return (alpha + codes) / (alpha + beta + max(purchases, 0))


def gates_user(score: float, threshold: float) -> bool:
    """Whether a user with ``score`` gets no offer (``threshold`` 1: the gate is off)."""
    return threshold < OFF and score >= threshold

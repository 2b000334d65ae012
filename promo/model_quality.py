"""How good the purchase model's predictions were, from the decision logs.

Every decision logs the model's P(purchase within the window | action) for each action
(``decisions.purchase_probs``, parallel to ``score_offers``), taken before its outcome was
known; its label is whether the user bought within the window, known once the window closed
(a ``purchase`` or ``no_conversion`` outcome). So each prediction is judged out of sample,
in the order it was made (prequential evaluation): per UTC day of the decision, the
log-loss (with the log-loss of always predicting that day's buying rate beside it, the
no-skill reference), the AUC (how well the predictions rank buyers above the others), and
calibration (predicted against observed, in bins of predicted probability). A decision is
counted only once its window has closed by the store's clock (the latest decision logged):
a buyer is known the moment it buys but a non-buyer only at the close, so counting labels as
they come would lean the latest days (a window's length) towards buyers.

The decisions that sent an offer are also judged apart: they are few among many ``none``
decisions, so the day's overall calibration hides how the model rates its offers, and it is
there that a learner goes wrong first (the policy sends the offers whose effect it
overrates most: a new learner's first offers were predicted to convert twice as often as
they did). Their realised share comes with its Wilson interval, so a day whose predicted
rate lies above it says, without any ground truth, that the model overrated its offers (and
one below it, that it underrated them).

>>> day = dt.date(2026, 1, 1)
>>> # (day, offered, bin, decisions, buyers, sum of P, sum of log-loss)
>>> rows = [(day, 0, 10, 10, 1, 1.0, 3.3), (day, 1, 80, 10, 8, 8.0, 5.0)]
>>> [quality] = quality_by_day(rows)
>>> quality.decisions, quality.buyers, round(quality.auc, 3), round(quality.log_loss, 3)
(20, 9, 0.854, 0.415)
>>> quality.offers, quality.offers_predicted, quality.offers_bought.value
(10, 0.8, 0.8)
>>> [first] = quality_by_day([(day, 1, 30, 400, 60, 120.0, 150.0)])  # 30 % predicted
>>> round(first.offers_bought.high, 3), first.offers_rated  # 15 % bought, at most 18.8 %
(0.188, 'overrated')
>>> quality_by_day([(day, 1, 5, 400, 60, 20.0, 150.0)])[0].offers_rated  # 5 % predicted
'underrated'
>>> [(b.low, b.decisions, round(b.observed, 2)) for b in calibration(rows)]
[(0.1, 10, 0.1), (0.8, 10, 0.8)]
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from clickhouse_driver import Client

from streams.evaluation import Estimate, wilson_interval

#: Predictions are grouped in bins of this width for the AUC (ties within a bin count half)
#: and summed into tenths for calibration.
BINS = 100

# The store's clock: the latest decision logged (milliseconds).
CLOCK_SQL = "SELECT max(ts_ms) FROM decisions"

# One row per (day, offered, bin): decisions, buyers, sum of predictions, sum of log-losses,
# over the decisions whose window closed by %(as_of_ms)s.
QUALITY_SQL = f"""
SELECT day, offered, bin, count() AS n, sum(converted) AS buyers, sum(p) AS sum_p,
    sum(-(converted * log(p) + (1 - converted) * log(1 - p))) AS sum_log_loss
FROM
(
    SELECT decision_id, toDate(ts) AS day, toUInt8(chosen_offer != 'none') AS offered,
        greatest(least(purchase_probs[indexOf(score_offers, chosen_offer)], 0.9999), 0.0001) AS p,
        toUInt32(floor(p * {BINS})) AS bin
    FROM decisions FINAL
    WHERE indexOf(score_offers, chosen_offer) > 0 AND toUInt64(expires_at) * 1000 <= %(as_of_ms)s
) AS predicted
ANY INNER JOIN
(
    SELECT decision_id, toUInt8(countIf(type = 'purchase') > 0) AS converted
    FROM outcomes FINAL
    WHERE type IN ('purchase', 'no_conversion')
    GROUP BY decision_id
) AS labelled USING decision_id
GROUP BY day, offered, bin
ORDER BY day, offered, bin
"""


class Row(NamedTuple):
    """One row of ``QUALITY_SQL``, its columns by name: the query's layout in one place."""

    day: dt.date
    offered: int
    bin: int
    decisions: int
    buyers: int
    sum_p: float
    sum_log_loss: float


@dataclass(frozen=True)
class QualityDay:
    """The predictions of the decisions of one UTC day, against what followed."""

    day: dt.date
    decisions: int
    buyers: int
    mean_predicted: float
    log_loss: float
    #: Log-loss of predicting the day's own buying rate for everyone: no skill.
    reference_log_loss: float
    #: nan when the day has only buyers or only non-buyers.
    auc: float
    #: The decisions that sent an offer: how many, their mean predicted P(buy | offer) (nan
    #: without any), and the share that bought with its 95 % Wilson interval.
    offers: int
    offers_predicted: float
    offers_bought: Estimate

    @property
    def offers_rated(self) -> str:
        """``overrated`` where the offers' predicted rate lies above the interval of the share
        that bought, ``underrated`` where below it, else ``""``."""
        if self.offers_predicted > self.offers_bought.high:
            return "overrated"
        return "underrated" if self.offers_predicted < self.offers_bought.low else ""


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    decisions: int
    mean_predicted: float
    observed: float


def read_rows(client: Client, as_of_ms: int | None = None) -> list[Row]:
    """The decisions whose window closed by ``as_of_ms`` (default: the store's clock)."""
    if as_of_ms is None:
        ((as_of_ms,),) = client.execute(CLOCK_SQL)
    return [Row(*r) for r in client.execute(QUALITY_SQL, {"as_of_ms": as_of_ms or 0})]


def quality_by_day(rows: Iterable[Sequence[Any]]) -> list[QualityDay]:
    by_day: dict[dt.date, list[Row]] = defaultdict(list)
    for row in map(Row._make, rows):
        by_day[row.day].append(row)
    days = []
    for day, bins in sorted(by_day.items()):
        n = sum(r.decisions for r in bins)
        buyers = sum(r.buyers for r in bins)
        offered = [r for r in bins if r.offered]
        offers = sum(r.decisions for r in offered)
        days.append(
            QualityDay(
                day,
                n,
                buyers,
                sum(r.sum_p for r in bins) / n,
                sum(r.sum_log_loss for r in bins) / n,
                _entropy(buyers / n),
                auc_of_bins([(r.bin, r.buyers, r.decisions - r.buyers) for r in bins]),
                offers,
                sum(r.sum_p for r in offered) / offers if offers else math.nan,
                wilson_interval(sum(r.buyers for r in offered), offers),
            )
        )
    return days


def calibration(rows: Iterable[Sequence[Any]], tenths: int = 10) -> list[CalibrationBin]:
    """Predicted against observed over all days, in bins of predicted probability."""
    sums: dict[int, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for r in map(Row._make, rows):
        s = sums[r.bin * tenths // BINS]
        s[0], s[1], s[2] = s[0] + r.decisions, s[1] + r.buyers, s[2] + r.sum_p
    return [
        CalibrationBin(k / tenths, (k + 1) / tenths, int(n), p / n, buyers / n)
        for k, (n, buyers, p) in sorted(sums.items())
    ]


def auc_of_bins(bins: Sequence[tuple[int, int, int]]) -> float:
    """AUC from (bin, positives, negatives): the chance a buyer's prediction is above a
    non-buyer's, a tie (the same bin) counting half.

    >>> auc_of_bins([(1, 0, 5), (9, 5, 0)]), auc_of_bins([(3, 2, 2)])
    (1.0, 0.5)
    """
    merged: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for b, p, n in bins:
        merged[b][0] += p
        merged[b][1] += n
    positives = sum(p for p, _ in merged.values())
    negatives = sum(n for _, n in merged.values())
    if positives == 0 or negatives == 0:
        return math.nan
    below = 0  # negatives in lower bins
    wins = 0.0
    for _, (p, n) in sorted(merged.items()):
        wins += p * (below + n / 2)
        below += n
    return wins / (positives * negatives)


def _entropy(rate: float) -> float:
    if rate <= 0 or rate >= 1:
        return 0.0
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))

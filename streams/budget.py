"""A daily discount budget, paced across the day: may this offer be sent now?

The budget (``PROMO_DAILY_BUDGET``, currency per UTC day of event time) is split evenly over
the clickstream's partitions. Each partition's :class:`BudgetLedger` is kept beside that
partition's user states and goes to the same changelog, so a worker that takes a partition
over takes its spend too, and workers never need to agree on anything. Users are hashed over
partitions, so each share meets a like share of the traffic.

Spend is *committed* when an offer is sent: its expected discount (the offer's learned
redemption rate times its cost on the expected order), the figure the policy priced. The
realised discount (``outcomes.discount``) lags by up to the attribution window.

Pacing follows the traffic, not the clock: the ledger learns the shape of a day from the
decision points it meets (counts per hour, averaged over past days) and by any moment allows
the share of the budget that the day's decision points so far represent. Two gates, each a
suppression reason:

- ``budget``: the day's share would be exceeded;
- ``pacing``: the offer would run ahead of the traffic curve (plus a small slack), or it earns
  less per unit of expected discount than the ROI bar. The bar rises while spend runs ahead
  of pace and sinks back to zero behind it, so under a tight budget the offers that earn most
  per unit of discount go out rather than whichever come first.

>>> ledger = BudgetLedger()
>>> noon = 1_700_438_400_000 + 12 * 3_600_000
>>> ledger.observe(noon)
>>> round(ledger.paced_share(noon), 3)   # no history yet: a flat day
0.5
>>> ledger.gate(noon, cost=40.0, gain=5.0, budget=100.0), ledger.gate(noon, 70.0, 5.0, 100.0)
(None, 'pacing')
>>> ledger.commit(40.0); ledger.gate(noon, 70.0, 5.0, 100.0)
'budget'
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

HOUR_MS = 3_600_000
#: Weight of the latest complete day in the learned shape of a day's traffic.
SHAPE_MEMORY = 0.3
#: Share of the day's budget that may run ahead of the traffic curve (bursts within an hour).
PACING_SLACK = 0.05
#: How far the ROI bar moves per offer considered, at most, and its ceiling.
BAR_STEP = 0.05
BAR_MAX = 10.0
LEDGER_FORMAT = 1

GATES = ("budget", "pacing")


def _flat_day() -> list[float]:
    return [1.0 / 24] * 24


@dataclass(slots=True)
class BudgetLedger:
    """One partition's spend today, and what it knows of a day's traffic."""

    day: int = -1
    spent: float = 0.0
    #: Expected gain an offer must bring per unit of expected discount (0: any gain will do).
    bar: float = 0.0
    #: Share of a day's decision points in each UTC hour, learned over past days.
    shape: list[float] = field(default_factory=_flat_day)
    #: Decision points met in each hour of the current day.
    today: list[int] = field(default_factory=lambda: [0] * 24)

    def observe(self, ts: int) -> None:
        """Count a decision point (suppressed or not): the traffic the pacing follows."""
        day, hour = divmod(ts // HOUR_MS, 24)
        if day > self.day:
            self._new_day(day)
        self.today[hour] += 1

    def paced_share(self, ts: int) -> float:
        """Share of a usual day's decision points that come before ``ts`` in its day."""
        hours, into = divmod(ts % (24 * HOUR_MS), HOUR_MS)
        return sum(self.shape[:hours]) + self.shape[hours] * into / HOUR_MS

    def gate(self, ts: int, cost: float, gain: float, budget: float) -> str | None:
        """Why an offer of expected discount ``cost`` and expected gain ``gain`` may not go
        out now under a day's ``budget`` (one of :data:`GATES`), or None."""
        if cost <= 0.0:
            return None
        if self.spent + cost > budget:
            return "budget"
        if self.spent + cost > budget * (self.paced_share(ts) + PACING_SLACK):
            return "pacing"
        if self.bar > 0.0 and gain < self.bar * cost:  # at 0 any offer goes, explored ones too
            return "pacing"
        return None

    def commit(self, cost: float) -> None:
        self.spent += cost

    def steer(self, ts: int, budget: float) -> None:
        """Move the ROI bar after an offer was considered: up while spend runs ahead of the
        traffic curve, down (to zero) while it lags."""
        pace = budget * self.paced_share(ts)
        ahead = self.spent / pace - 1.0 if pace > 0 else 1.0
        step = BAR_STEP * max(-1.0, min(1.0, ahead))
        self.bar = max(0.0, min(BAR_MAX, self.bar + step))

    def _new_day(self, day: int) -> None:
        total = sum(self.today)
        if self.day >= 0 and total:
            self.shape = [
                (1 - SHAPE_MEMORY) * s + SHAPE_MEMORY * n / total
                for s, n in zip(self.shape, self.today, strict=True)
            ]
        self.day, self.spent, self.today = day, 0.0, [0] * 24

    def to_bytes(self) -> bytes:
        return orjson.dumps([LEDGER_FORMAT, self.day, self.spent, self.bar, self.shape, self.today])

    @classmethod
    def from_bytes(cls, data: bytes) -> BudgetLedger:
        version, day, spent, bar, shape, today = orjson.loads(data)
        if version != LEDGER_FORMAT:
            raise ValueError(f"budget ledger format {version} is not {LEDGER_FORMAT}")
        return cls(day, spent, bar, shape, today)

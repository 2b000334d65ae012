"""Faust's commits must not stall on an offset acknowledged twice.

Faust commits a partition up to the first run of consecutive offsets in its sorted list of
acknowledged ones (``Consumer._new_offset``), after adding to that list every offset of the
gaps it recorded (offsets it took for absent). An offset that was recorded as a gap *and*
then delivered and acknowledged (after a seek back, around a rebalance) is in the list
twice, and a repeated number ends the run: each commit then advances only to the next
repeat. ``make chaos`` (crashes) saw a worker process its whole partition while the group's
offset crept forward by 22 a minute, with 19,132 acknowledged offsets held in a range of
19,004 numbers. Offsets delivered after all are taken out of the gaps, and repeats out of
the list, before Faust computes the commit.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

_faust_new_offset = Consumer._new_offset


def _new_offset_without_repeats(self: Any, tp: TP) -> int | None:
    acked: list[int] = self._acked[tp]
    if acked:
        distinct = set(acked)
        gap = self._gap[tp]
        for interval in list(gap):  # few, and rare: a rebalance or a real gap in the log
            lo, hi = interval.begin, interval.end
            span = range(lo, hi) if hi - lo < len(distinct) else sorted(distinct)
            for offset in span:
                if lo <= offset < hi and offset in distinct:
                    gap.chop(offset, offset + 1)  # delivered after all: not a gap
        if len(distinct) != len(acked):
            acked[:] = sorted(distinct)
    return _faust_new_offset(self, tp)


def commit_past_repeated_offsets() -> None:
    """Install the guard (process-wide, idempotent)."""
    Consumer._new_offset = _new_offset_without_repeats  # type: ignore[method-assign]


_faust_add_gap = Consumer._add_gap
#: Topics whose agent checks that each partition comes without a hole (agents.resume).
_ORDER_CHECKED: set[str] = set()


async def _add_gap_unless_checked(self: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    if tp.topic not in _ORDER_CHECKED:
        await _faust_add_gap(self, tp, offset_from, offset_to)


def holes_found_by_the_agent(topic: str) -> None:
    """Faust records a "gap" whenever a message comes more than one past the last it handed
    on, and commits over it once a later offset is acknowledged. After a seek back (around a
    rebalance) it recorded ranges still to come, or never to come, and committed over
    messages no state had applied (make chaos). For ``topic`` it records none: its agent
    processes each partition without a hole, and records the holes the log really has."""
    _ORDER_CHECKED.add(topic)
    Consumer._add_gap = _add_gap_unless_checked  # type: ignore[method-assign]

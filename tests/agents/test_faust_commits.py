"""Faust's commit computation with offsets recorded as a gap and then delivered after all."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

from faust.types import TP
from intervaltree import IntervalTree

from agents.faust_commits import _faust_new_offset, _new_offset_without_repeats

TP0 = TP("clickstream", 0)


def _consumer(committed: int, acked: list[int], gap: tuple[int, int]) -> SimpleNamespace:
    """The parts of Faust's consumer that ``_new_offset`` reads."""
    gaps: defaultdict[TP, IntervalTree] = defaultdict(IntervalTree)
    gaps[TP0].addi(*gap)
    return SimpleNamespace(
        _acked={TP0: list(acked)},
        _acked_index={TP0: set(acked)},
        _gap=gaps,
        _committed_offset={TP0: committed},
    )


def test_a_partition_whose_gap_was_delivered_after_all_commits_to_its_end() -> None:
    # Offsets 10..19 were first taken for a gap, then delivered and acknowledged (a seek
    # back around a rebalance): every offset 5..29 is processed, so the commit is 30.
    acked = list(range(5, 30))
    assert _new_offset_without_repeats(_consumer(5, acked, (10, 20)), TP0) == 30
    # Faust alone counts 10..19 twice and stops at the first repeat (make chaos: a
    # partition's commits crept 22 offsets a minute behind a worker that had read it all).
    assert _faust_new_offset(_consumer(5, acked, (10, 20)), TP0) == 11


def test_a_real_gap_is_still_committed_over() -> None:
    # Offsets 10..19 never came (the broker has none there): Faust's gap lets the commit pass.
    acked = [*range(5, 10), *range(20, 30)]
    assert _new_offset_without_repeats(_consumer(5, acked, (10, 20)), TP0) == 30


async def test_faust_records_no_gap_on_a_topic_whose_agent_finds_the_holes() -> None:
    # Faust took messages still to come after a seek back for a gap, and committed over them.
    from faust.transport.consumer import Consumer

    from agents.faust_commits import holes_found_by_the_agent

    holes_found_by_the_agent("clickstream")
    gaps: defaultdict[TP, IntervalTree] = defaultdict(IntervalTree)
    consumer = SimpleNamespace(_gap=gaps, _committed_offset=defaultdict(lambda: None))
    await Consumer._add_gap(consumer, TP0, 10, 19)  # type: ignore[arg-type]
    await Consumer._add_gap(consumer, TP("training", 0), 10, 19)  # type: ignore[arg-type]
    assert dict(gaps) == {TP("training", 0): IntervalTree.from_tuples([(10, 20)])}

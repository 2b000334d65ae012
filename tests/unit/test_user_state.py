"""The user state's bytes: states written before per-item margins still load, a state with
margins keeps the layout an older worker reads, and so does a state without a group."""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from streams.attribution import OpenDecision
from streams.errors import PromoError
from streams.search_interest import SEARCHES_KEPT
from streams.user_state import STATE_FORMAT, StateSummary, UserState

ABANDON_MS = 1_800_000
T0 = 1_700_000_000_000

#: A state as the worker wrote it before margins existed (format 3, commit f74e85f): two cart
#: lines of [unit price, quantity, category], 2 x 40.00 + 1 x 10.00.
BEFORE_MARGINS = (
    b"[3,[1700000060000,-1,1700000060000,-1,1700000060000,[[[2833333,0.0,0.0,2.0,0.0,0.0,0.0,"
    b"0.0,0.0,90.0]],[[472222,0.0,0.0,2.0,0.0,0.0,0.0,0.0,0.0,90.0]],[[19675,0.0,0.0,2.0,0.0,"
    b'0.0,0.0,0.0,0.0,90.0]]],{"i1":[40.0,2,"shoes"],"i2":[10.0,1,"socks"]},{"shoes":[1.0,'
    b'1700000000000.0],"socks":[1.0,1700000060000.0]}],-1,[],[],0,7,[[113886376653345,'
    b"1700000060000]]]"
)


def test_a_state_written_before_margins_loads_with_the_global_rate() -> None:
    state = UserState.from_bytes(BEFORE_MARGINS, ABANDON_MS)
    assert state.features.cart_value == 90.0 and state.features.cart_items == 3
    assert state.features.cart_margin_rate(0.3) == 0.3
    assert state.to_bytes() == BEFORE_MARGINS  # and writes back byte for byte


def test_margins_survive_the_round_trip_and_keep_the_older_layout() -> None:
    state = UserState.from_bytes(BEFORE_MARGINS, ABANDON_MS)
    state.features.update(
        "add_to_cart", ts=T0 + 120_000, category="bags", amount=100.0, item_id="i3", margin=60.0
    )
    again = UserState.from_bytes(state.to_bytes(), ABANDON_MS)
    # (2 x 40 x 0.3 + 1 x 10 x 0.3 + 60) / 190
    assert again.features.cart_margin_rate(0.3) == pytest.approx(87.0 / 190.0)
    # No new format: a worker of the previous version reads lines by their first three
    # elements, and the margin comes after them.
    assert _format_of(state.to_bytes()) == 3
    assert again.features.cart["i3"] == [100.0, 1, "bags", 60.0]
    assert again.features.cart["i1"] == [40.0, 2, "shoes"]  # no margin: no fourth element


def _format_of(data: bytes) -> int:
    return int(data[1 : data.index(b",")])


def test_a_group_is_kept_and_only_a_state_with_one_takes_the_new_format() -> None:
    state = UserState.from_bytes(BEFORE_MARGINS, ABANDON_MS)
    assert (state.group, state.group_ts) == ("", -1)
    state.note_group("north", T0 + 60_000)
    state.note_group("south", T0)  # sent earlier in event time, arrived later: not the latest
    state.note_group(None, T0 + 90_000)  # an event without a group changes nothing
    again = UserState.from_bytes(state.to_bytes(), ABANDON_MS)
    assert (again.group, again.group_ts) == ("north", T0 + 60_000)
    assert _format_of(state.to_bytes()) == 4
    assert state.to_bytes() == b"[4" + BEFORE_MARGINS[2:-1] + b',"north",1700000060000]'


def test_only_a_state_holding_a_category_offers_decision_takes_format_5() -> None:
    state = UserState.from_bytes(BEFORE_MARGINS, ABANDON_MS)
    decision = OpenDecision(
        "de-1", T0, T0 + 1, "cat20", "of-1", "C20-1", False, (0.0,), 3, target="shoes"
    )
    state.open_decisions.append(decision)
    assert _format_of(state.to_bytes()) == 5
    again = UserState.from_bytes(state.to_bytes(), ABANDON_MS)
    assert again.open_decisions == [decision] and again.open_decisions[0].target == "shoes"
    decision.target = None  # an offer on the whole order: the older layout again
    assert _format_of(state.to_bytes()) == 3


def test_only_a_state_keeping_searches_takes_format_6() -> None:
    state = UserState.from_bytes(BEFORE_MARGINS, ABANDON_MS)
    state.note_search("running shoes", T0 + 90_000)
    assert _format_of(state.to_bytes()) == STATE_FORMAT == 6
    assert state.to_bytes() == (
        b"[6" + BEFORE_MARGINS[2:-1] + b',"",-1,[["running shoes",1700000090000,1]]]'
    )
    again = UserState.from_bytes(state.to_bytes(), ABANDON_MS)
    assert again.searches == [["running shoes", T0 + 90_000, 1]]
    state.searches.clear()
    assert state.to_bytes() == BEFORE_MARGINS  # none kept: the older layout again


def test_a_state_keeps_the_latest_searches_and_only_the_newest_waits() -> None:
    state = UserState.new(ABANDON_MS)
    for n in range(SEARCHES_KEPT + 2):
        state.note_search(f"q{n}", T0 + n)
    assert [s[0] for s in state.searches] == [f"q{n}" for n in range(2, SEARCHES_KEPT + 2)]
    assert [s[2] for s in state.searches] == [0] * (SEARCHES_KEPT - 1) + [1]


@pytest.mark.parametrize("first", [b"[7", b"[0", b"[-1", b'["4"'])
def test_a_format_this_worker_does_not_know_stops_it_naming_the_format(first: bytes) -> None:
    # Not only newer ones: a first field below 1 or of another type is not read as format 4.
    shown = first[1:].decode().replace('"', "'")
    with pytest.raises(PromoError, match=f"format {shown} is not one this worker reads"):
        UserState.from_bytes(first + BEFORE_MARGINS[2:], ABANDON_MS)


def _in_every_format() -> dict[int, bytes]:
    """One state with open windows in each format this worker reads."""
    state = UserState.from_bytes(BEFORE_MARGINS, ABANDON_MS)
    state.open_decisions = [
        OpenDecision("de-1", T0, T0 + 9_000, "none", None, None, True, (0.0,), 3),
        OpenDecision("de-2", T0 + 1, T0 + 5_000, "pct10", "of-2", "C10", False, (1.0,), 3),
    ]
    state.partition, state.offset = 4, 812
    formats = {3: state.to_bytes()}
    fields = orjson.loads(formats[3])
    formats[1] = orjson.dumps([1, *fields[1:6]])  # before the replay guard
    formats[2] = orjson.dumps([2, *fields[1:7], [123, 456]])  # CRC-32s of the last ids
    state.note_group("north", T0)
    formats[4] = state.to_bytes()
    state.open_decisions[0].target = "shoes"
    formats[5] = state.to_bytes()
    state.note_search("running shoes", T0)
    formats[6] = state.to_bytes()
    assert {n: _format_of(data) for n, data in formats.items()} == {n: n for n in formats}
    return formats


@pytest.mark.parametrize("fmt", [1, 2, 3, 4, 5, 6])
def test_a_states_summary_agrees_with_the_state_in_every_format(fmt: int) -> None:
    data = _in_every_format()[fmt]
    state = UserState.from_bytes(data, ABANDON_MS)
    assert StateSummary.of(data) == StateSummary(
        state.partition,
        state.offset,
        state.features.watermark,
        min(d.expires_at for d in state.open_decisions),
    )
    assert StateSummary.of(data).due_at == T0 + 5_000  # the earliest, not the first
    assert StateSummary.of(data).offset == (-1 if fmt == 1 else 812)
    state.open_decisions.clear()
    assert StateSummary.of(state.to_bytes()).due_at is None


def test_a_summary_of_a_format_this_worker_does_not_know_stops_it_naming_it() -> None:
    with pytest.raises(PromoError, match="format 7 is not one this worker reads"):
        StateSummary.of(b"[7" + BEFORE_MARGINS[2:])


def test_a_states_bytes_hold_no_more_memory_than_their_length() -> None:
    # The table keeps every user's bytes for days: orjson's spare writing buffer with each
    # would treble a million users' memory.
    state = UserState.from_bytes(_in_every_format()[6], ABANDON_MS)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = [state.to_bytes() for _ in range(100)]
        held = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert held / len(kept) < len(kept[0]) + 128

"""The user state's bytes: states written before per-item margins still load, and a state
with margins keeps the layout an older worker reads."""

from __future__ import annotations

import pytest

from streams.user_state import STATE_FORMAT, UserState

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
    # And writes back byte for byte, in today's format (format 4 only added a field to open
    # decisions, of which this state has none).
    assert state.to_bytes() == BEFORE_MARGINS.replace(b"[3,", f"[{STATE_FORMAT},".encode(), 1)


def test_margins_survive_the_round_trip_and_keep_the_older_layout() -> None:
    state = UserState.from_bytes(BEFORE_MARGINS, ABANDON_MS)
    state.features.update(
        "add_to_cart", ts=T0 + 120_000, category="bags", amount=100.0, item_id="i3", margin=60.0
    )
    again = UserState.from_bytes(state.to_bytes(), ABANDON_MS)
    # (2 x 40 x 0.3 + 1 x 10 x 0.3 + 60) / 190
    assert again.features.cart_margin_rate(0.3) == pytest.approx(87.0 / 190.0)
    # Margins made no new format: a worker of the previous version reads lines by their first
    # three elements, and the margin comes after them. (Format 4 is the abuse gate's.)
    assert _format_of(state.to_bytes()) == STATE_FORMAT == 4
    assert again.features.cart["i3"] == [100.0, 1, "bags", 60.0]
    assert again.features.cart["i1"] == [40.0, 2, "shoes"]  # no margin: no fourth element


def _format_of(data: bytes) -> int:
    return int(data[1 : data.index(b",")])

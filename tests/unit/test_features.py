"""Sliding windows: scenarios on a timeline, and the incremental state against recomputation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.feature_vector import FEATURE_INDEX, feature_vector
from streams.features import DAY, HOUR, MINUTE, TYPES, SlidingWindowFeatures
from streams.user_state import IDLE_EVICTION_MS

# A window of length W counts the W/width most recent buckets (10 min, 1 h, 1 d wide):
#   t:   0     50m    2h          26h             8d
#        view  view   view        view            view
#   1h  at 50m: [0 .. 50m]                      -> 2
#   24h at 26h: buckets 3h..26h: 2h is out      -> 1
#   7d  at 8d:  days 2..8: day 1 (26h) is out   -> 1
SCENARIOS = [
    # (events as (type, ts), window, expected views at the last event)
    ([("view", 0), ("view", 50 * MINUTE)], "1h", 2),
    ([("view", 0), ("view", 50 * MINUTE), ("view", 2 * HOUR)], "1h", 1),
    ([("view", 0), ("view", 50 * MINUTE), ("view", 2 * HOUR), ("view", 26 * HOUR)], "24h", 1),
    ([("view", 0), ("view", 3 * HOUR), ("view", 26 * HOUR)], "24h", 2),
    ([("view", 0), ("view", 2 * HOUR), ("view", 26 * HOUR), ("view", 8 * DAY)], "7d", 1),
    ([("view", 0), ("view", 2 * DAY), ("view", 8 * DAY)], "7d", 2),
    ([("view", 0), ("view", 2 * HOUR), ("view", 26 * HOUR), ("view", 8 * DAY)], "30d", 4),
    ([("view", 0), ("view", 31 * DAY)], "30d", 1),
]


@pytest.mark.parametrize(("events", "window", "expected"), SCENARIOS)
def test_window_scenarios(events: list[tuple[str, int]], window: str, expected: int) -> None:
    f = SlidingWindowFeatures()
    for event_type, ts in events:
        f.update(event_type, ts=ts)
    assert f.count("view", window) == expected


def test_late_event_counts_in_its_own_bucket() -> None:
    f = SlidingWindowFeatures()
    f.update("view", ts=10 * HOUR)
    f.update("view", ts=10 * HOUR - 20 * MINUTE)  # 20 minutes late: still in the last hour
    f.update("view", ts=10 * HOUR - 5 * HOUR)  # 5 h late: in the day, not the hour
    f.update("view", ts=10 * HOUR - 40 * DAY)  # older than every window: counted nowhere
    assert (f.count("view", "1h"), f.count("view", "24h"), f.count("view", "30d")) == (2, 3, 3)
    assert f.last_view == 10 * HOUR  # recency follows event time, not arrival


def test_cart_purchase_and_abandonment() -> None:
    f = SlidingWindowFeatures(abandon_after_ms=30 * MINUTE)
    f.update("add_to_cart", ts=0, amount=20.0, item_id="a", quantity=2, category="x")
    f.update("add_to_cart", ts=MINUTE, amount=5.0, item_id="b", quantity=1, category="y")
    f.update("remove_from_cart", ts=2 * MINUTE, item_id="a", quantity=1)
    assert (f.cart_value, f.cart_items) == (25.0, 2)
    f.update("view", ts=3 * MINUTE, category="x")
    assert not f.returning_to_cart
    f.update("view", ts=2 * HOUR, category="x")
    assert f.returning_to_cart and f.abandoned_carts("24h") == 1
    f.update("view", ts=2 * HOUR + MINUTE, category="x")  # same visit: not a second abandonment
    assert not f.returning_to_cart and f.abandoned_carts("24h") == 1
    f.update("purchase", ts=2 * HOUR + 2 * MINUTE, amount=25.0)
    assert (f.cart_value, f.spend("24h"), f.count("purchase", "1h")) == (0.0, 25.0, 1)


def test_affinity_prefers_recent_interest() -> None:
    f = SlidingWindowFeatures()
    for i in range(5):
        f.update("view", ts=i * MINUTE, category="old")
    for i in range(3):
        f.update("view", ts=30 * DAY + i * MINUTE, category="new")
    assert f.top_categories(now=30 * DAY)[0][0] == "new"
    assert 0.5 < f.top_category_share(now=30 * DAY) <= 1.0


# --- incremental == from scratch ------------------------------------------------------------

_WIDTH = {"1h": 10 * MINUTE, "24h": HOUR, "7d": DAY, "30d": DAY}
_LENGTH = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}


def oracle_count(events: list[tuple[str, int]], event_type: str, window: str) -> int:
    """Recount from all events: those in the W/width most recent buckets."""
    watermark = max(ts for _, ts in events)
    width = _WIDTH[window]
    first = (watermark - _LENGTH[window]) // width + 1
    return sum(
        1 for t, ts in events if t == event_type and first <= ts // width <= watermark // width
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(TYPES[:3]), st.integers(0, 40 * DAY)), min_size=1, max_size=60
    ).map(lambda evs: sorted(evs, key=lambda e: e[1])),
    st.integers(0, 3 * HOUR),
)
def test_incremental_windows_match_recomputation(
    events: list[tuple[str, int]], jitter: int
) -> None:
    # Events arrive in order up to a small lateness (jitter): each is shifted back at most that.
    f = SlidingWindowFeatures()
    seen: list[tuple[str, int]] = []
    for i, (event_type, ts) in enumerate(events):
        ts = max(ts - (jitter if i % 3 == 1 else 0), 0)
        f.update(event_type, ts=ts)
        seen.append((event_type, ts))
    for window in ("1h", "24h", "7d", "30d"):
        for event_type in TYPES[:3]:
            expected = oracle_count(seen, event_type, window)
            # A late event whose bucket was already dropped counts nowhere: never more than oracle.
            got = f.count(event_type, window)
            assert got <= expected
            if jitter == 0:
                assert got == expected, (window, event_type)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(TYPES), st.integers(0, 10 * DAY)), min_size=1, max_size=40)
)
def test_compact_form_round_trips(events: list[tuple[str, int]]) -> None:
    f = SlidingWindowFeatures()
    for event_type, ts in events:
        f.update(event_type, ts=ts, category="c", amount=3.0, item_id="i")
    g = SlidingWindowFeatures.from_compact(f.to_compact(), f.abandon_after_ms)
    assert g.to_compact() == f.to_compact()
    for window in ("1h", "24h", "7d", "30d"):
        assert g.count("view", window) == f.count("view", window)
        assert g.spend(window) == f.spend(window)


def test_only_browsing_returns_to_an_abandoned_cart() -> None:
    f = SlidingWindowFeatures(abandon_after_ms=30 * MINUTE)
    f.update("add_to_cart", ts=0, amount=20.0, item_id="a", category="x")
    f.update("offer_shown", ts=3 * HOUR)  # a notification, not the user
    assert not f.returning_to_cart and f.abandoned_carts("24h") == 0
    f.update("purchase", ts=4 * HOUR, amount=20.0)  # bought it: not abandoned
    assert not f.returning_to_cart and f.abandoned_carts("24h") == 0 and f.cart_value == 0


def test_cart_is_bounded_and_expires() -> None:
    f = SlidingWindowFeatures()
    for i in range(150):
        f.update("add_to_cart", ts=i, amount=1.0, item_id=f"i{i}", category="x")
    assert f.cart_items == 100 and "i149" in f.cart and "i0" not in f.cart
    f.update("view", ts=40 * DAY, category="x")  # back after 40 days
    assert f.cart == {} and not f.returning_to_cart


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(TYPES), st.integers(0, 10 * DAY), st.sampled_from("xyz")),
        min_size=1,
        max_size=40,
    )
)
def test_a_user_idle_past_the_eviction_horizon_looks_new(
    events: list[tuple[str, int, str]],
) -> None:
    """Evicting idle users (``IDLE_EVICTION_MS``) changes no feature but category interest:
    back after that long, the kept state and a new one give the same vector."""
    kept, new = SlidingWindowFeatures(), SlidingWindowFeatures()
    for event_type, ts, category in sorted(events, key=lambda e: e[1]):
        kept.update(event_type, ts=ts, category=category, amount=3.0, item_id=category)
    back = kept.watermark + IDLE_EVICTION_MS + 1
    for f in (kept, new):
        f.update("view", ts=back, category="x", item_id="x")
    interest = FEATURE_INDEX["top_category_share"]
    assert [v for i, v in enumerate(feature_vector(kept, back)) if i != interest] == [
        v for i, v in enumerate(feature_vector(new, back)) if i != interest
    ]


def test_the_cart_margin_rate_weighs_lines_by_value() -> None:
    f = SlidingWindowFeatures()
    assert f.cart_margin_rate(0.3) == 0.3  # an empty cart says nothing
    f.update("add_to_cart", ts=0, amount=50.0, item_id="a", quantity=2, category="x")
    assert f.cart_margin_rate(0.3) == 0.3  # no margin anywhere: the global rate, exactly
    f.update("add_to_cart", ts=1, amount=100.0, item_id="b", quantity=1, margin=60.0)
    assert f.cart_margin_rate(0.3) == pytest.approx((0.3 * 100 + 60) / 200)
    f.update("add_to_cart", ts=2, amount=120.0, item_id="b", quantity=1, margin=10.0)
    assert f.cart["b"] == [100.0, 2, None, 60.0]  # a line keeps its first price and margin
    f.update("remove_from_cart", ts=3, item_id="a", quantity=2)
    assert f.cart_margin_rate(0.3) == pytest.approx(0.6)  # only the 60-on-100 line is left
    f.update("purchase", ts=4, amount=200.0)
    assert f.cart_margin_rate(0.3) == 0.3

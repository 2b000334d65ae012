"""The pure stages of promo-stream, in flow order.

Despite the name, this package is *not* Faust streams: it is plain, synchronous logic with no
Kafka, no ClickHouse, no clock and no environment, testable on its own. The Faust wiring lives
in ``agents/``. Flow: ``validation`` (raw bytes -> event or rejection) -> ``features``
(per-user sliding windows) -> ``feature_vector`` -> ``models`` (shared River models) ->
``policy`` (which offer, with what probability) -> ``abuse`` (no offer to likely coupon
hunters) -> ``engine`` (the per-event step tying them
together) -> ``attribution`` (outcomes and labels) -> ``sink_rows`` (ClickHouse rows) ->
``evaluation`` (uplift, confidence intervals, off-policy estimates).
"""

-- Tables written by the sink agents (row layout: streams/sink_rows.py) and by the simulator.
--
-- We are at-least-once: a redelivered message is written again. Every table is therefore a
-- ReplacingMergeTree whose ORDER BY holds the record's natural id plus only columns that the
-- id fixes (a redelivery repeats them), and whose partition key is fixed by the id too, so
-- the copies meet in one partition and merge into one row. Until a merge has run, copies
-- coexist: every query and view reads these tables with FINAL (or groups by the id).
--
-- Times: DateTime('UTC') in whole seconds for partitions and people, plus the exact epoch
-- milliseconds in an integer column (DateTime64 does not exist in ClickHouse 18.16).
-- Must run on ClickHouse 18.16 and current ClickHouse alike (see shared/INFRA.md).
-- Never edit this file once applied: add a new numbered migration.

CREATE TABLE IF NOT EXISTS events
(
    event_id String,
    user_id String,
    ts DateTime('UTC'),
    ts_ms UInt64,
    type String,
    session_id String,
    item_id String,
    category String,
    -- NULL when the event has none: a free item (0) is not a missing price.
    price Nullable(Float64),
    quantity UInt32,
    query String,
    order_id String,
    order_total Nullable(Float64),
    item_ids Array(String),
    item_prices Array(Float64),
    item_quantities Array(UInt32),
    item_categories Array(String),
    coupon_code String,
    offer_id String,
    -- Where the first stored copy came from; a producer's resend has another offset.
    kafka_partition UInt16,
    kafka_offset UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts_ms, event_id)
;

CREATE TABLE IF NOT EXISTS decisions
(
    decision_id String,
    user_id String,
    ts DateTime('UTC'),
    ts_ms UInt64,
    trigger_event_id String,
    trigger String,
    segment UInt16,
    control UInt8,
    chosen_offer String,
    policy_offer String,
    propensity Float64,
    -- scores and purchase_probs of the decision, parallel to score_offers.
    score_offers Array(String),
    scores Array(Float64),
    purchase_probs Array(Float64),
    features Array(Float64),
    expected_order_value Float64,
    offer_id String,
    expires_at DateTime('UTC'),
    policy_version String,
    model_version UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts_ms, decision_id)
;

CREATE TABLE IF NOT EXISTS outcomes
(
    outcome_id String,
    decision_id String,
    user_id String,
    ts DateTime('UTC'),
    ts_ms UInt64,
    type String,
    source_event_id String,
    offer_code String,
    control UInt8,
    order_total Float64,
    discount Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (decision_id, outcome_id)
;

CREATE TABLE IF NOT EXISTS dead_letters
(
    source_topic String,
    `partition` UInt32,
    `offset` UInt64,
    -- NULL: the message had no key / its bytes are not UTF-8.
    key Nullable(String),
    reason String,
    detail String,
    raw_b64 String,
    raw_text Nullable(String),
    message_ts DateTime('UTC'),
    message_ts_ms Int64,
    schema_version UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(message_ts)
ORDER BY (source_topic, `partition`, `offset`)
;

-- The simulator's ground truth and run summaries. Its runner creates the same tables when
-- they are missing; keep both definitions identical.
CREATE TABLE IF NOT EXISTS sim_truth
(
    run_id String,
    user_id String,
    action String,
    response_type String,
    p_purchase Float64,
    expected_revenue Float64,
    expected_discount Float64,
    expected_profit Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, user_id, action)
;

CREATE TABLE IF NOT EXISTS sim_runs
(
    run_id String,
    started_at DateTime,
    sim_start_ms UInt64,
    sim_end_ms UInt64,
    users UInt32,
    events_sent UInt64,
    malformed_sent UInt64,
    offers_received UInt64,
    offers_shown UInt64,
    purchases UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY run_id
;

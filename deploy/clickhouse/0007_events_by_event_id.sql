-- One row per event_id: `events` was sorted by (user_id, ts_ms, event_id), so a producer's
-- resend of an event with another `ts` stayed two rows after merges. The table is rebuilt
-- sorted by (user_id, event_id): copies of an event now meet and merge whatever their ts
-- (within one month's partition: a resend whose ts moved to another month stays apart).
--
-- Run with the workers stopped (`make up` migrates before it starts any): rows the sinks
-- insert between the copy and the rename would stay in the old table. The copy runs twice,
-- before and after the rename, so only that window can lose a row.

DROP TABLE IF EXISTS events_before_0007
;

CREATE TABLE IF NOT EXISTS events_by_event_id
(
    event_id String,
    user_id String,
    ts DateTime('UTC'),
    ts_ms UInt64,
    type String,
    session_id String,
    item_id String,
    category String,
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
    kafka_partition UInt16,
    kafka_offset UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, event_id)
;

INSERT INTO events_by_event_id SELECT * FROM events
;

RENAME TABLE events TO events_before_0007, events_by_event_id TO events
;

INSERT INTO events SELECT * FROM events_before_0007
WHERE event_id NOT IN (SELECT event_id FROM events)
;

DROP TABLE events_before_0007
;

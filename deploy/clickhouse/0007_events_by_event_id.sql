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

-- The same columns as `events` (whatever migrations gave it), another sort key.
CREATE TABLE IF NOT EXISTS events_by_event_id AS events
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

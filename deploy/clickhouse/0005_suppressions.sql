-- Suppressions: decision points that sent nothing although they could have, and why (caps,
-- cool-down, lateness, control, budget, pacing). One row per suppressed decision point;
-- decision_id is empty when no decision was taken. See schemas/suppressions.py.

CREATE TABLE IF NOT EXISTS suppressions
(
    suppression_id String,
    user_id String,
    ts DateTime('UTC'),
    ts_ms UInt64,
    trigger_event_id String,
    trigger String,
    reason String,
    policy_version String,
    decision_id String,
    policy_offer String,
    expected_cost Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (user_id, ts_ms, suppression_id)
;

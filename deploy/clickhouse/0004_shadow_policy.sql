-- Shadow mode: a candidate policy decides beside the serving one and its choice is logged,
-- never sent, so analysts can compare the two on the same decision points before switching.
-- Empty strings and 0 where no shadow ran (and on rows written before this migration).

ALTER TABLE decisions ADD COLUMN shadow_policy String DEFAULT ''
;

ALTER TABLE decisions ADD COLUMN shadow_offer String DEFAULT ''
;

ALTER TABLE decisions ADD COLUMN shadow_propensity Float64 DEFAULT 0
;

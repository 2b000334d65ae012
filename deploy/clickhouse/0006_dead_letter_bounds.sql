-- Dead letters are bounded: they carry at most the first 16,384 bytes of a rejected message
-- (truncated = 1), with the size and SHA-256 of the whole. Rows written before this
-- migration carried the whole message: 0, '' and 0.

ALTER TABLE dead_letters ADD COLUMN raw_size UInt64 DEFAULT 0
;

ALTER TABLE dead_letters ADD COLUMN raw_sha256 String DEFAULT ''
;

ALTER TABLE dead_letters ADD COLUMN truncated UInt8 DEFAULT 0
;

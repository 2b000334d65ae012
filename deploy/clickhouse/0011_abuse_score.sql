-- Abuse gating: each decision logs the user's abuse score (streams/abuse.py: the estimated
-- share of their purchases paid with coupon codes the engine never sent them). A decision
-- the gate withheld has a suppression with reason 'abuse' (no schema change: reason is a
-- String). 0 on rows written before this migration.

ALTER TABLE decisions ADD COLUMN abuse_score Float64 DEFAULT 0
;

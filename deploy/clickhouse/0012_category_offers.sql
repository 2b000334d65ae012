-- Category offers: an offer whose discount applies to one category's lines names it
-- (streams/catalogue.py). Each decision logs the category its policy_offer is on, so
-- analysts can split conversion and profit by target. '' for an offer on the whole order,
-- for no offer, and on rows written before this migration.

ALTER TABLE decisions ADD COLUMN target_category String DEFAULT ''
;

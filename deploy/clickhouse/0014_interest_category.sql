-- Interest: each decision logs the category the user was most drawn to at that moment
-- (decayed interest from views, cart adds, purchases and searches; streams/features.py), so
-- analysts can split offers and conversion by what users were looking for. '' when the user
-- had shown no interest yet, and on rows written before this migration.

ALTER TABLE decisions ADD COLUMN interest_category String DEFAULT ''
;

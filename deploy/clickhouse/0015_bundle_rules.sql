-- Bundles from association rules (README, "Bundles from association rules"): `promo rules`
-- counts how often two categories are bought in one order (promo/bundle_rules.py, the SQL),
-- stores each computation here under its version (its time in ms), then publishes the same
-- rules to the workers. Never edit once applied.

-- One row per computation: the purchases counted (`since_ms` to `until_ms`), the orders
-- among them that name a line category (`baskets`), and how many rules it kept.
CREATE TABLE IF NOT EXISTS bundle_rule_runs
(
    rules_version UInt64,
    computed_at DateTime('UTC'),
    since_ms UInt64,
    until_ms UInt64,
    baskets UInt64,
    rules UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY rules_version
;

-- A rule a -> b: orders with a line of `antecedent` also hold one of `consequent`;
-- support = both / all orders, confidence = both / orders with a, lift = confidence /
-- (orders with b / all orders). Pairs bought together in fewer than PROMO_RULES_MIN_ORDERS
-- orders are not kept.
CREATE TABLE IF NOT EXISTS bundle_rules
(
    rules_version UInt64,
    antecedent String,
    consequent String,
    orders UInt64,
    antecedent_orders UInt64,
    consequent_orders UInt64,
    support Float64,
    confidence Float64,
    lift Float64
)
ENGINE = ReplacingMergeTree
ORDER BY (rules_version, antecedent, consequent)
;

-- The rules the workers were last given: the newest computation's (none when it kept none).
CREATE VIEW IF NOT EXISTS v_bundle_rules AS
SELECT *
FROM bundle_rules
WHERE rules_version = (SELECT max(rules_version) FROM bundle_rule_runs)
;

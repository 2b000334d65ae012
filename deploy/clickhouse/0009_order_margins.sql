-- Per-item margins (docs/contracts.md, "Margins"): an order's gross margin, known when every
-- line of the purchase carried one (schemas/events.py, ClickEvent.order_margin), travels to
-- the events and outcomes rows; -1 means unknown, as on every row written before this
-- migration. A sentinel rather than Nullable: comparisons with NULL differ between 18.16 and
-- current ClickHouse, and `order_margin >= 0` reads the same on both.
--
-- Net profit of an order: its margin when known, else rate x (revenue + discount); minus the
-- discount. The margin rate is the report's parameter, so the views split a row's net profit
-- into what the rate multiplies and what it does not:
--
--     net profit = net_fixed + rate * rate_base
--     rate_base  = revenue + discount of the purchases without a known margin
--     net_fixed  = known margins - every discount
--
-- Without margins, rate_base = revenue + discount and net_fixed = -discount: the old formula.
-- The aggregate views carry the sums, squares and cross-product of both, so the mean and
-- variance of net profit follow for any rate (streams/evaluation.py, net_profit_moments).
-- The views are dropped and created again with the new columns at the end; the rest of each
-- view is the same as in 0002, 0003 and 0008. `DROP TABLE` drops a view on both engines;
-- 18.16 has no `DROP VIEW` (added in 2020). Never edit once applied.

ALTER TABLE events ADD COLUMN margin Float64 DEFAULT -1
;

ALTER TABLE events ADD COLUMN item_margins Array(Float64)
;

ALTER TABLE events ADD COLUMN order_margin Float64 DEFAULT -1
;

ALTER TABLE outcomes ADD COLUMN order_margin Float64 DEFAULT -1
;

DROP TABLE IF EXISTS v_decision_outcomes
;

DROP TABLE IF EXISTS v_treatment_vs_control
;

DROP TABLE IF EXISTS v_by_offer
;

DROP TABLE IF EXISTS v_by_segment
;

DROP TABLE IF EXISTS v_by_policy_version
;

DROP TABLE IF EXISTS v_by_day
;

DROP TABLE IF EXISTS v_user_outcomes
;

DROP TABLE IF EXISTS v_users_treatment_vs_control
;

CREATE VIEW IF NOT EXISTS v_decision_outcomes AS
SELECT
    decision_id,
    user_id,
    ts,
    ts_ms,
    trigger,
    segment,
    control,
    if(control = 1, 'control', 'treatment') AS arm,
    chosen_offer,
    policy_offer,
    propensity,
    expected_order_value,
    offer_id,
    expires_at,
    policy_version,
    model_version,
    toUInt8(purchases > 0) AS converted,
    toUInt8(redemptions > 0) AS redeemed,
    toUInt8(shows > 0) AS shown,
    toUInt8(clicks > 0) AS clicked,
    purchases,
    purchase_revenue AS revenue,
    purchase_discount AS discount,
    purchase_rate_base AS rate_base,
    purchase_margin_known - purchase_discount AS net_fixed
FROM decisions FINAL
ANY LEFT JOIN
(
    SELECT
        decision_id,
        countIf(type = 'purchase') AS purchases,
        countIf(type = 'redeemed') AS redemptions,
        countIf(type = 'shown') AS shows,
        countIf(type = 'clicked') AS clicks,
        sumIf(order_total, type = 'purchase') AS purchase_revenue,
        sumIf(discount, type = 'purchase') AS purchase_discount,
        sumIf(order_total + discount, type = 'purchase' AND order_margin < 0)
            AS purchase_rate_base,
        sumIf(order_margin, type = 'purchase' AND order_margin >= 0) AS purchase_margin_known
    FROM outcomes FINAL
    GROUP BY decision_id
) AS outcome_counts USING decision_id
;
CREATE VIEW IF NOT EXISTS v_treatment_vs_control AS
SELECT
    arm,
    control,
    count() AS decisions,
    uniqExact(user_id) AS users,
    sum(converted) AS conversions,
    conversions / decisions AS conversion_rate,
    sum(redeemed) AS redemptions,
    sum(shown) AS shows,
    sum(clicked) AS clicks,
    sum(revenue) AS sum_revenue,
    sum(revenue * revenue) AS sum_revenue_sq,
    sum(discount) AS sum_discount,
    sum(discount * discount) AS sum_discount_sq,
    sum(revenue * discount) AS sum_revenue_discount,
    sum_revenue / decisions AS revenue_per_decision,
    sum_discount / decisions AS discount_per_decision,
    sum(rate_base) AS sum_rate_base,
    sum(rate_base * rate_base) AS sum_rate_base_sq,
    sum(net_fixed) AS sum_net_fixed,
    sum(net_fixed * net_fixed) AS sum_net_fixed_sq,
    sum(rate_base * net_fixed) AS sum_rate_base_net_fixed
FROM v_decision_outcomes
GROUP BY arm, control
;
CREATE VIEW IF NOT EXISTS v_by_offer AS
SELECT
    if(control = 1, policy_offer, chosen_offer) AS offer,
    arm,
    control,
    count() AS decisions,
    uniqExact(user_id) AS users,
    sum(converted) AS conversions,
    conversions / decisions AS conversion_rate,
    sum(redeemed) AS redemptions,
    sum(shown) AS shows,
    sum(clicked) AS clicks,
    sum(revenue) AS sum_revenue,
    sum(revenue * revenue) AS sum_revenue_sq,
    sum(discount) AS sum_discount,
    sum(discount * discount) AS sum_discount_sq,
    sum(revenue * discount) AS sum_revenue_discount,
    sum_revenue / decisions AS revenue_per_decision,
    sum_discount / decisions AS discount_per_decision,
    sum(rate_base) AS sum_rate_base,
    sum(rate_base * rate_base) AS sum_rate_base_sq,
    sum(net_fixed) AS sum_net_fixed,
    sum(net_fixed * net_fixed) AS sum_net_fixed_sq,
    sum(rate_base * net_fixed) AS sum_rate_base_net_fixed
FROM v_decision_outcomes
GROUP BY offer, arm, control
;
CREATE VIEW IF NOT EXISTS v_by_segment AS
SELECT
    segment,
    arm,
    control,
    count() AS decisions,
    uniqExact(user_id) AS users,
    sum(converted) AS conversions,
    conversions / decisions AS conversion_rate,
    sum(redeemed) AS redemptions,
    sum(shown) AS shows,
    sum(clicked) AS clicks,
    sum(revenue) AS sum_revenue,
    sum(revenue * revenue) AS sum_revenue_sq,
    sum(discount) AS sum_discount,
    sum(discount * discount) AS sum_discount_sq,
    sum(revenue * discount) AS sum_revenue_discount,
    sum_revenue / decisions AS revenue_per_decision,
    sum_discount / decisions AS discount_per_decision,
    sum(rate_base) AS sum_rate_base,
    sum(rate_base * rate_base) AS sum_rate_base_sq,
    sum(net_fixed) AS sum_net_fixed,
    sum(net_fixed * net_fixed) AS sum_net_fixed_sq,
    sum(rate_base * net_fixed) AS sum_rate_base_net_fixed
FROM v_decision_outcomes
GROUP BY segment, arm, control
;
CREATE VIEW IF NOT EXISTS v_by_policy_version AS
SELECT
    policy_version,
    arm,
    control,
    count() AS decisions,
    uniqExact(user_id) AS users,
    sum(converted) AS conversions,
    conversions / decisions AS conversion_rate,
    sum(redeemed) AS redemptions,
    sum(shown) AS shows,
    sum(clicked) AS clicks,
    sum(revenue) AS sum_revenue,
    sum(revenue * revenue) AS sum_revenue_sq,
    sum(discount) AS sum_discount,
    sum(discount * discount) AS sum_discount_sq,
    sum(revenue * discount) AS sum_revenue_discount,
    sum_revenue / decisions AS revenue_per_decision,
    sum_discount / decisions AS discount_per_decision,
    sum(rate_base) AS sum_rate_base,
    sum(rate_base * rate_base) AS sum_rate_base_sq,
    sum(net_fixed) AS sum_net_fixed,
    sum(net_fixed * net_fixed) AS sum_net_fixed_sq,
    sum(rate_base * net_fixed) AS sum_rate_base_net_fixed
FROM v_decision_outcomes
GROUP BY policy_version, arm, control
;
CREATE VIEW IF NOT EXISTS v_by_day AS
SELECT
    toDate(ts) AS day,
    arm,
    control,
    count() AS decisions,
    uniqExact(user_id) AS users,
    sum(converted) AS conversions,
    conversions / decisions AS conversion_rate,
    sum(redeemed) AS redemptions,
    sum(shown) AS shows,
    sum(clicked) AS clicks,
    sum(revenue) AS sum_revenue,
    sum(revenue * revenue) AS sum_revenue_sq,
    sum(discount) AS sum_discount,
    sum(discount * discount) AS sum_discount_sq,
    sum(revenue * discount) AS sum_revenue_discount,
    sum_revenue / decisions AS revenue_per_decision,
    sum_discount / decisions AS discount_per_decision,
    sum(rate_base) AS sum_rate_base,
    sum(rate_base * rate_base) AS sum_rate_base_sq,
    sum(net_fixed) AS sum_net_fixed,
    sum(net_fixed * net_fixed) AS sum_net_fixed_sq,
    sum(rate_base * net_fixed) AS sum_rate_base_net_fixed
FROM v_decision_outcomes
GROUP BY day, arm, control
;
CREATE VIEW IF NOT EXISTS v_user_outcomes AS
SELECT
    user_id,
    control,
    if(control = 1, 'control', 'treatment') AS arm,
    first_decision_ms,
    decisions,
    offers,
    purchases,
    toUInt8(purchases > 0) AS converted,
    revenue,
    discount,
    revenue_margin_unknown + discount_margin_unknown AS rate_base,
    margin_known - discount AS net_fixed
FROM
(
    SELECT
        user_id,
        any(user_control) AS control,
        any(first_ms) AS first_decision_ms,
        any(n_decisions) AS decisions,
        any(n_offers) AS offers,
        countIf(purchase_ms >= first_ms AND purchase_ms > 0) AS purchases,
        sumIf(purchase_total, purchase_ms >= first_ms AND purchase_ms > 0) AS revenue,
        sumIf(purchase_total, purchase_ms >= first_ms AND purchase_ms > 0 AND purchase_margin < 0)
            AS revenue_margin_unknown,
        sumIf(purchase_margin, purchase_ms >= first_ms AND purchase_ms > 0 AND purchase_margin >= 0)
            AS margin_known
    FROM
    (
        SELECT
            user_id,
            any(control) AS user_control,
            min(ts_ms) AS first_ms,
            count() AS n_decisions,
            countIf(offer_id != '') AS n_offers
        FROM decisions FINAL
        GROUP BY user_id
    ) AS user_decisions
    ALL LEFT JOIN
    (
        SELECT
            user_id,
            ts_ms AS purchase_ms,
            ifNull(order_total, 0) AS purchase_total,
            order_margin AS purchase_margin
        FROM events FINAL
        WHERE type = 'purchase'
    ) AS purchase USING user_id
    GROUP BY user_id
) AS user_purchases
ANY LEFT JOIN
(
    -- An alias equal to a column name replaces the column everywhere in its query: the
    -- discount is renamed before it is summed twice.
    SELECT
        user_id,
        sum(redeemed_discount) AS discount,
        sumIf(redeemed_discount, order_margin < 0) AS discount_margin_unknown
    FROM
    (
        SELECT user_id, discount AS redeemed_discount, order_margin
        FROM outcomes FINAL
        WHERE type = 'redeemed'
    ) AS redeemed
    GROUP BY user_id
) AS user_discounts USING user_id
;
CREATE VIEW IF NOT EXISTS v_users_treatment_vs_control AS
SELECT
    arm,
    control,
    count() AS users,
    sum(converted) AS converters,
    converters / users AS conversion_rate,
    sum(offers) AS offers,
    sum(revenue) AS sum_revenue,
    sum(revenue * revenue) AS sum_revenue_sq,
    sum(discount) AS sum_discount,
    sum(discount * discount) AS sum_discount_sq,
    sum(revenue * discount) AS sum_revenue_discount,
    sum_revenue / users AS revenue_per_user,
    sum_discount / users AS discount_per_user,
    sum(rate_base) AS sum_rate_base,
    sum(rate_base * rate_base) AS sum_rate_base_sq,
    sum(net_fixed) AS sum_net_fixed,
    sum(net_fixed * net_fixed) AS sum_net_fixed_sq,
    sum(rate_base * net_fixed) AS sum_rate_base_net_fixed
FROM v_user_outcomes
GROUP BY arm, control
;

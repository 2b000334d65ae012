-- Category offers (README, "Category offers"): per category offer sent, and on which
-- category, the decisions and what followed them, both arms (control: the offer the policy
-- would have sent, on the category it would have been on), as v_by_offer per offer. Descriptive, like
-- every per-decision view. v_decision_outcomes is created again with target_category (the
-- rest as in 0010). `DROP TABLE` drops a view on both engines (18.16 has no `DROP VIEW`).
-- Never edit once applied.

DROP TABLE IF EXISTS v_decision_outcomes
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
    purchase_margin_known - purchase_discount AS net_fixed,
    segment_name,
    rule_segment,
    user_group,
    target_category
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

CREATE VIEW IF NOT EXISTS v_by_target AS
SELECT
    concat(policy_offer, ' on ', target_category) AS target,
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
WHERE target_category != '' AND (control = 1 OR chosen_offer = policy_offer)
GROUP BY target, arm, control
;

-- Evaluation views: one row per decision with what followed it, then treatment-vs-control
-- aggregates that carry sums of squares so confidence intervals can be computed outside
-- (streams/evaluation.py). Margins are a report parameter, not a view constant: the views
-- keep revenue and discount, and sum_revenue_discount lets the report get the variance of
-- margin * revenue - discount for any margin.
--
-- Tables are read with FINAL so that copies written by a redelivery, before ClickHouse has
-- merged them, never count twice. ClickHouse 18.16 allows one JOIN per SELECT, no CTEs;
-- current ClickHouse refuses a joined subquery without an alias (ALIAS_REQUIRED).
-- Never edit this file once applied: add a new numbered migration.

-- converted: at least one purchase in the attribution window; revenue: what those purchases
-- paid; discount: what the offer's coupon took off them. A redeemed outcome repeats its
-- purchase's order_total and discount, so both are summed over purchase outcomes only.
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
    purchase_discount AS discount
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
        sumIf(discount, type = 'purchase') AS purchase_discount
    FROM outcomes FINAL
    GROUP BY decision_id
) AS outcome_counts USING decision_id
;

-- Control decisions are those the policy took for held-out users, who were sent nothing:
-- comparing per decision compares like with like.
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
    sum_discount / decisions AS discount_per_decision
FROM v_decision_outcomes
GROUP BY arm, control
;

-- offer: what treatment users were sent, and for control users what the policy would have
-- sent them, so each offer's treatment row has a matching control row.
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
    sum_discount / decisions AS discount_per_decision
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
    sum_discount / decisions AS discount_per_decision
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
    sum_discount / decisions AS discount_per_decision
FROM v_decision_outcomes
GROUP BY policy_version, arm, control
;

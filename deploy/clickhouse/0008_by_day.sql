-- Per UTC day of the decision, the same per-decision aggregate as v_by_offer and its
-- siblings (0002): the report's "over time" breakdown, descriptive like the others. A day's
-- row counts the decisions taken that day and what followed each of them, even if the
-- purchase fell on a later day. Never edit once applied: add a new numbered migration.

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
    sum_discount / decisions AS discount_per_decision
FROM v_decision_outcomes
GROUP BY day, arm, control
;

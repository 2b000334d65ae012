-- Per-user evaluation: the intention-to-treat comparison. A user's arm is sticky (hash-based
-- holdout), so comparing users compares two random samples of the population: every purchase
-- a user made from their first decision on counts once, however many decisions it followed.
-- discount: what redeemed coupons took off those purchases. Tables read with FINAL, joined
-- subqueries aliased (see 0002).

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
    discount
FROM
(
    SELECT
        user_id,
        any(user_control) AS control,
        any(first_ms) AS first_decision_ms,
        any(n_decisions) AS decisions,
        any(n_offers) AS offers,
        countIf(purchase_ms >= first_ms AND purchase_ms > 0) AS purchases,
        sumIf(purchase_total, purchase_ms >= first_ms AND purchase_ms > 0) AS revenue
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
        SELECT user_id, ts_ms AS purchase_ms, ifNull(order_total, 0) AS purchase_total
        FROM events FINAL
        WHERE type = 'purchase'
    ) AS purchase USING user_id
    GROUP BY user_id
) AS user_purchases
ANY LEFT JOIN
(
    SELECT user_id, sum(discount) AS discount
    FROM outcomes FINAL
    WHERE type = 'redeemed'
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
    sum_discount / users AS discount_per_user
FROM v_user_outcomes
GROUP BY arm, control
;

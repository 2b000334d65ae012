-- Named segments and fairness (README, "Named segments" and "Fairness").
--
-- Every decision now carries the k-means segment's description in its model version
-- (segment_name), the user's rule segment (rule_segment: new, potential, regular, high_value,
-- at_risk) and the group the platform last sent for the user (user_group; `group` on the
-- wire, a keyword in SQL). Events keep their optional group too. Empty strings on rows
-- written before this migration.
--
-- v_decision_outcomes is created again with those three columns (the rest as in 0009), and
-- v_by_rule_segment breaks decisions down by rule segment as v_by_segment does by segment.
-- v_segment_names gives each segment's latest name. v_user_groups puts each user in the
-- groups of their *first* decision: fixed before any offer could touch them, so within a
-- group, treatment and control users are still two random samples and the per-user
-- comparison stays unbiased. v_fairness sums, per grouping, group and arm, what the report
-- needs for offer rates, discounts and the per-user effect (streams/fairness.py, promo/fairness.py).
-- `DROP TABLE` drops a view on both engines (18.16 has no `DROP VIEW`). Never edit once applied.

ALTER TABLE decisions ADD COLUMN segment_name String DEFAULT ''
;

ALTER TABLE decisions ADD COLUMN rule_segment String DEFAULT ''
;

ALTER TABLE decisions ADD COLUMN user_group String DEFAULT ''
;

ALTER TABLE events ADD COLUMN user_group String DEFAULT ''
;

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
    user_group
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

CREATE VIEW IF NOT EXISTS v_by_rule_segment AS
SELECT
    rule_segment,
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
GROUP BY rule_segment, arm, control
;

-- A segment's name comes from the model version that decided (names are given per snapshot
-- and stay while the centre stays): the latest version's is the segment's name now.
CREATE VIEW IF NOT EXISTS v_segment_names AS
SELECT
    segment,
    argMax(segment_name, model_version) AS name,
    min(model_version) AS first_model_version,
    max(model_version) AS last_model_version
FROM decisions FINAL
WHERE segment_name != ''
GROUP BY segment
;

CREATE VIEW IF NOT EXISTS v_user_groups AS
SELECT
    user_id,
    argMin(segment, ts_ms) AS first_segment,
    argMin(rule_segment, ts_ms) AS first_rule_segment,
    argMin(user_group, ts_ms) AS first_user_group,
    countIf(policy_offer != 'none') AS policy_offers
FROM decisions FINAL
GROUP BY user_id
;

-- One row per grouping (dimension), group and arm, over users (v_user_outcomes): the users'
-- decisions and the offers they were sent (control: none; policy_offers counts what the
-- policy would have sent), converters, and the moments of revenue, discount and net profit
-- per user as v_users_treatment_vs_control has them. Groupings: segment (its id), rule_segment,
-- new_vs_returning (a first decision in the rule segment `new`, or not) and group (the
-- platform's; '' for users it sent none for). Rows from before 0010 have no rule segment:
-- their new_vs_returning is '' too.
CREATE VIEW IF NOT EXISTS v_fairness AS
SELECT
    ['segment', 'rule_segment', 'new_vs_returning', 'group'][dimension_index] AS dimension,
    [
        toString(first_segment),
        first_rule_segment,
        multiIf(first_rule_segment = 'new', 'new', first_rule_segment = '', '', 'returning'),
        first_user_group
    ][dimension_index] AS group_name,
    arm,
    control,
    count() AS users,
    sum(decisions) AS sum_decisions,
    sum(offers) AS sum_offers,
    sum(policy_offers) AS sum_policy_offers,
    sum(converted) AS converters,
    sum(revenue) AS sum_revenue,
    sum(revenue * revenue) AS sum_revenue_sq,
    sum(discount) AS sum_discount,
    sum(discount * discount) AS sum_discount_sq,
    sum(revenue * discount) AS sum_revenue_discount,
    sum(rate_base) AS sum_rate_base,
    sum(rate_base * rate_base) AS sum_rate_base_sq,
    sum(net_fixed) AS sum_net_fixed,
    sum(net_fixed * net_fixed) AS sum_net_fixed_sq,
    sum(rate_base * net_fixed) AS sum_rate_base_net_fixed
FROM
(
    SELECT
        arm, control, decisions, offers, converted, revenue, discount, rate_base, net_fixed,
        first_segment, first_rule_segment, first_user_group, policy_offers,
        arrayJoin([1, 2, 3, 4]) AS dimension_index
    FROM v_user_outcomes
    ANY INNER JOIN
    (
        SELECT user_id, first_segment, first_rule_segment, first_user_group, policy_offers
        FROM v_user_groups
    ) AS user_groups USING user_id
)
GROUP BY dimension, group_name, arm, control
;

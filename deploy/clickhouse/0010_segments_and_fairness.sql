-- Named segments and fairness (README, "Named segments" and "Fairness").
--
-- Every decision now carries the k-means segment's description in its model version
-- (segment_name), the user's rule segment (rule_segment: new, potential, regular, high_value,
-- at_risk) and the group the platform last sent for the user (user_group; `group` on the
-- wire, a keyword in SQL). Events keep their optional group too. Empty strings on rows
-- written before this migration.
--
-- v_decision_outcomes is created again with those three columns (the rest as in 0009).
-- v_by_group is the one base view at the decision grain for groups: each decision in the
-- groups it was logged with, four ways (below). v_by_rule_segment reads it; the report's
-- fairness section and its per-decision table by k-means segment read it too. v_user_groups
-- gives each user the platform group of their first decision, for the per-user effect.
-- v_segment_names gives each segment's latest name, for analysts.
-- `DROP TABLE` drops a view on both engines (18.16 has no `DROP VIEW`). No window functions,
-- no tuple arguments to argMin/argMax: 18.16 must read every statement. Never edit once
-- applied.

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

-- One row per grouping (dimension), group and arm, at the decision grain: every decision
-- counts in the groups it was logged with, not its user's first or latest. Groupings:
--   segment           the k-means id and the name logged with the decision ("3 frequent
--                     browsers"; the id alone before names existed): a renamed segment is two
--                     groups, because a name changes only when its centre moved;
--   rule_segment      the decision's rule segment ('' before 0010);
--   new_vs_returning  the rule segment `new` or any other ('' before 0010);
--   group             the platform's group at the decision ('' when none was sent).
-- Decisions are summed per user first, then per group: the columns of v_by_segment (moments
-- over decisions, for the report's descriptive per-decision tables) and, per user,
-- the squares and cross-products of their decisions, offers sent, conversions and discount.
-- A user's decisions are not independent of each other; users are: those user-level sums
-- give the report intervals with the user as the unit (streams/fairness.py, ClusteredRatio).
-- A user whose decisions fall in two groups counts in both.
CREATE VIEW IF NOT EXISTS v_by_group AS
SELECT
    dimension,
    group_name,
    arm,
    control,
    count() AS users,
    sum(user_decisions) AS decisions,
    sum(user_conversions) AS conversions,
    conversions / decisions AS conversion_rate,
    sum(user_redemptions) AS redemptions,
    sum(user_shows) AS shows,
    sum(user_clicks) AS clicks,
    sum(user_offers) AS offers,
    sum(user_revenue) AS sum_revenue,
    sum(user_revenue_sq) AS sum_revenue_sq,
    sum(user_discount) AS sum_discount,
    sum(user_discount_sq) AS sum_discount_sq,
    sum(user_revenue_discount) AS sum_revenue_discount,
    sum_revenue / decisions AS revenue_per_decision,
    sum_discount / decisions AS discount_per_decision,
    sum(user_rate_base) AS sum_rate_base,
    sum(user_rate_base_sq) AS sum_rate_base_sq,
    sum(user_net_fixed) AS sum_net_fixed,
    sum(user_net_fixed_sq) AS sum_net_fixed_sq,
    sum(user_rate_base_net_fixed) AS sum_rate_base_net_fixed,
    sum(user_decisions * user_decisions) AS sum_user_decisions_sq,
    sum(user_offers * user_offers) AS sum_user_offers_sq,
    sum(user_offers * user_decisions) AS sum_user_offers_decisions,
    sum(user_conversions * user_conversions) AS sum_user_conversions_sq,
    sum(user_conversions * user_decisions) AS sum_user_conversions_decisions,
    sum(user_discount * user_discount) AS sum_user_discount_sq,
    sum(user_discount * user_decisions) AS sum_user_discount_decisions
FROM
(
    SELECT
        dimension,
        group_name,
        arm,
        control,
        user_id,
        count() AS user_decisions,
        countIf(offer_id != '') AS user_offers,
        sum(converted) AS user_conversions,
        sum(redeemed) AS user_redemptions,
        sum(shown) AS user_shows,
        sum(clicked) AS user_clicks,
        sum(revenue) AS user_revenue,
        sum(revenue * revenue) AS user_revenue_sq,
        sum(discount) AS user_discount,
        sum(discount * discount) AS user_discount_sq,
        sum(revenue * discount) AS user_revenue_discount,
        sum(rate_base) AS user_rate_base,
        sum(rate_base * rate_base) AS user_rate_base_sq,
        sum(net_fixed) AS user_net_fixed,
        sum(net_fixed * net_fixed) AS user_net_fixed_sq,
        sum(rate_base * net_fixed) AS user_rate_base_net_fixed
    FROM
    (
        SELECT
            user_id, arm, control, offer_id, converted, redeemed, shown, clicked, revenue,
            discount, rate_base, net_fixed,
            arrayJoin([1, 2, 3, 4]) AS dimension_index,
            ['segment', 'rule_segment', 'new_vs_returning', 'group'][dimension_index]
                AS dimension,
            [
                if(segment_name = '', toString(segment),
                    concat(toString(segment), ' ', segment_name)),
                rule_segment,
                multiIf(rule_segment = 'new', 'new', rule_segment = '', '', 'returning'),
                user_group
            ][dimension_index] AS group_name
        FROM v_decision_outcomes
    ) AS decision_groups
    GROUP BY dimension, group_name, arm, control, user_id
) AS user_groups
GROUP BY dimension, group_name, arm, control
;

-- The per-decision table by rule segment: v_by_segment's columns, from the base view.
CREATE VIEW IF NOT EXISTS v_by_rule_segment AS
SELECT
    group_name AS rule_segment,
    arm,
    control,
    decisions,
    users,
    conversions,
    conversion_rate,
    redemptions,
    shows,
    clicks,
    sum_revenue,
    sum_revenue_sq,
    sum_discount,
    sum_discount_sq,
    sum_revenue_discount,
    revenue_per_decision,
    discount_per_decision,
    sum_rate_base,
    sum_rate_base_sq,
    sum_net_fixed,
    sum_net_fixed_sq,
    sum_rate_base_net_fixed
FROM v_by_group
WHERE dimension = 'rule_segment'
;

-- A segment's latest name (of the highest model version that logged one), for analysts who
-- want today's words for an id. The report labels each decision with the name logged with it
-- (v_by_group), never this one: a segment renamed because its centre moved was another set
-- of users under the old name.
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

-- Each user's platform group at their first decision: logged before any offer could reach
-- them, so within a group treatment and control users are still two random samples (the
-- per-user effect, promo/fairness.py). The platform's group, not a segment: a segment at the
-- first decision says only how a user looked before buying (new or potential, nearly
-- always), while the platform's group is an attribute of the user it sends as it likes.
-- Decisions in one millisecond are first reduced to their smallest group, so that argMin
-- has one row per time and gives the same group on every read.
CREATE VIEW IF NOT EXISTS v_user_groups AS
SELECT
    user_id,
    argMin(ms_group, ts_ms) AS first_user_group
FROM
(
    SELECT user_id, ts_ms, min(user_group) AS ms_group
    FROM decisions FINAL
    GROUP BY user_id, ts_ms
) AS groups_per_ms
GROUP BY user_id
;

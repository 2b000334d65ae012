"""The headline's per-user figures as they stood at the end of each UTC day of the experiment.

For each day ``d`` from the first decision on, every user whose first decision (assignment)
fell on or before ``d``, with their outcomes from that first decision to the end of ``d``: the
same columns as the headline's query (``promo.report_figures.USERS_SQL``, which reads
``v_user_outcomes``) under an upper time bound. ``promo.report_figures.effect_over_time``
runs the headline's own maths on each day's users, so the last day's figure is the
headline's. One query; its rows are users x days (at most 280,000 for 20,000 users over 14
days): each user-day joined once with that user's purchases and redemptions.

>>> day_of(19_676)
datetime.date(2023, 11, 15)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from clickhouse_driver import Client

DAY_MS = 86_400_000
_EPOCH = dt.date(1970, 1, 1)

# Days are counted from the epoch in whole UTC days of the milliseconds columns (intDiv), so
# no time zone can shift a boundary; a day's end is the first millisecond of the next one.
# The last day is the latest of any decision, purchase or redemption, so the last day's
# figures hold everything the headline holds (decisions also keep every user's first day at
# or before it: a negative day count would wrap round in toUInt32). Purchases and
# redemptions are one stream ("kind"), joined once to the user-days; a user-day without
# either joins an empty row (kind '', at_ms 0), which no condition counts. Columns as
# USERS_SQL's, after the day.
CUMULATIVE_USERS_SQL = f"""
SELECT
    day,
    any(arm) AS arm,
    toUInt8(countIf(in_experiment) > 0) AS converted,
    sumIf(amount, in_experiment) AS revenue,
    sumIf(amount, is_discount) AS discount,
    sumIf(amount, (in_experiment OR is_discount) AND margin < 0) AS rate_base,
    sumIf(margin, in_experiment AND margin >= 0) - discount AS net_fixed,
    countIf(in_pre_period) AS pre_purchases,
    sumIf(amount, in_pre_period AND margin < 0) AS pre_rate_base,
    sumIf(margin, in_pre_period AND margin >= 0) AS pre_net_fixed
FROM
(
    SELECT
        user_id, arm, day, kind, at_ms, amount, margin,
        (day + 1) * {DAY_MS} AS day_end_ms,
        kind = 'redeemed' AND at_ms < day_end_ms AS is_discount,
        kind = 'purchase' AND at_ms > 0 AND at_ms >= first_ms
            AND at_ms < day_end_ms AS in_experiment,
        kind = 'purchase' AND at_ms > 0 AND at_ms < first_ms
            AND at_ms + %(pre_period_ms)s >= first_ms AS in_pre_period
    FROM
    (
        SELECT
            user_id, arm, first_ms,
            intDiv(first_ms, {DAY_MS})
                + arrayJoin(range(toUInt32(last_day - intDiv(first_ms, {DAY_MS}) + 1))) AS day
        FROM
        (
            SELECT
                user_id,
                if(any(control) = 1, 'control', 'treatment') AS arm,
                min(ts_ms) AS first_ms,
                (
                    SELECT intDiv(max(last_ms), {DAY_MS})
                    FROM
                    (
                        SELECT max(ts_ms) AS last_ms FROM decisions
                        UNION ALL
                        SELECT max(ts_ms) AS last_ms FROM events WHERE type = 'purchase'
                        UNION ALL
                        SELECT max(ts_ms) AS last_ms FROM outcomes WHERE type = 'redeemed'
                    )
                ) AS last_day
            FROM decisions FINAL
            GROUP BY user_id
        )
    ) AS user_days
    ALL LEFT JOIN
    (
        SELECT
            user_id, 'purchase' AS kind, ts_ms AS at_ms, ifNull(order_total, 0) AS amount,
            order_margin AS margin
        FROM events FINAL
        WHERE type = 'purchase'
        UNION ALL
        SELECT
            user_id, 'redeemed' AS kind, ts_ms AS at_ms, discount AS amount,
            order_margin AS margin
        FROM outcomes FINAL
        WHERE type = 'redeemed'
    ) AS money USING user_id
)
GROUP BY user_id, day
"""


def day_of(days_since_epoch: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=days_since_epoch)


def cumulative_user_columns(
    client: Client, pre_period_ms: int
) -> list[tuple[dt.date, list[np.ndarray[Any, Any]]]]:
    """Per day, oldest first: USERS_SQL's columns (arm, converted, revenue, discount,
    rate_base, net_fixed, pre_purchases, pre_rate_base, pre_net_fixed) for the users known
    by the end of that day."""
    columns = client.execute(CUMULATIVE_USERS_SQL, {"pre_period_ms": pre_period_ms}, columnar=True)
    if not columns:
        return []
    day, *values = (np.asarray(column) for column in columns)
    return [(day_of(int(d)), [v[day == d] for v in values]) for d in np.unique(day)]

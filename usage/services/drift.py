"""Checks behind `manage.py usage_drift` and the usage part of `manage.py reconcile`."""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from ..models import UsageEvent, UsageRollup, UsageRollupDay
from ..selectors import floor_day, floor_hour

ROLLUP_DRIFT_SQL = f"""
WITH raw AS (
    SELECT organization_id, metric_id, date_trunc('hour', occurred_at, 'UTC') AS hour,
           sum(quantity) AS quantity, count(*) AS events, max(quantity) AS quantity_max,
           sum(credits) AS credits
    FROM {UsageEvent._meta.db_table}
    WHERE occurred_at >= %(since)s AND (%(orgs)s::uuid[] IS NULL OR organization_id = ANY(%(orgs)s::uuid[]))
    GROUP BY 1, 2, 3
), rolled AS (
    SELECT organization_id, metric_id, hour, quantity, events, quantity_max, credits
    FROM {UsageRollup._meta.db_table}
    WHERE hour >= %(since)s AND (%(orgs)s::uuid[] IS NULL OR organization_id = ANY(%(orgs)s::uuid[]))
)
SELECT coalesce(raw.organization_id, rolled.organization_id), coalesce(raw.metric_id, rolled.metric_id),
       coalesce(raw.hour, rolled.hour), raw.quantity, rolled.quantity, raw.events, rolled.events,
       raw.credits, rolled.credits
FROM raw FULL OUTER JOIN rolled USING (organization_id, metric_id, hour)
WHERE raw.quantity IS DISTINCT FROM rolled.quantity OR raw.events IS DISTINCT FROM rolled.events
   OR raw.quantity_max IS DISTINCT FROM rolled.quantity_max OR raw.credits IS DISTINCT FROM rolled.credits
ORDER BY 1, 2, 3
LIMIT 100
"""  # noqa: S608 - table names are the models' own


DAILY_DRIFT_SQL = f"""
WITH hourly AS (
    SELECT organization_id, metric_id, date_trunc('day', hour, 'UTC') AS day, sum(quantity) AS quantity,
           sum(events) AS events, max(quantity_max) AS quantity_max, sum(credits) AS credits
    FROM {UsageRollup._meta.db_table}
    WHERE hour >= %(since)s AND (%(orgs)s::uuid[] IS NULL OR organization_id = ANY(%(orgs)s::uuid[]))
    GROUP BY 1, 2, 3
), daily AS (
    SELECT * FROM {UsageRollupDay._meta.db_table}
    WHERE day >= %(since)s AND (%(orgs)s::uuid[] IS NULL OR organization_id = ANY(%(orgs)s::uuid[]))
)
SELECT coalesce(hourly.organization_id, daily.organization_id), coalesce(hourly.metric_id, daily.metric_id),
       coalesce(hourly.day, daily.day), hourly.quantity, daily.quantity, hourly.events, daily.events
FROM hourly FULL OUTER JOIN daily USING (organization_id, metric_id, day)
WHERE hourly.quantity IS DISTINCT FROM daily.quantity OR hourly.events IS DISTINCT FROM daily.events
   OR hourly.quantity_max IS DISTINCT FROM daily.quantity_max OR hourly.credits IS DISTINCT FROM daily.credits
ORDER BY 1, 2, 3
LIMIT 100
"""  # noqa: S608 - table names are the models' own


def usage_rollup_drift_list(*, since: datetime, organization_ids: list | None = None) -> list[str]:
    """Hours since `since` where the rollups differ from the raw events they sum (a scan of the
    events of those hours: for the drift report, not for reads), and days whose daily rollup
    differs from its hours."""
    with connection.cursor() as cursor:
        cursor.execute(
            ROLLUP_DRIFT_SQL,
            {
                "since": floor_hour(since),
                "orgs": [str(o) for o in organization_ids] if organization_ids else None,
            },
        )
        rows = cursor.fetchall()
    drifts = [
        f"organization {org}: metric {metric} hour {hour:%Y-%m-%d %H:00}: events sum to {rq} ({re} events, "
        f"{rc} credits), the rollup says {uq} ({ue} events, {uc} credits)"
        for org, metric, hour, rq, uq, re, ue, rc, uc in rows
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            DAILY_DRIFT_SQL,
            {
                "since": floor_day(since),
                "orgs": [str(o) for o in organization_ids] if organization_ids else None,
            },
        )
        drifts += [
            f"organization {org}: metric {metric} day {day:%Y-%m-%d}: hours sum to {hq} ({he} events), "
            f"the daily rollup says {dq} ({de} events)"
            for org, metric, day, hq, dq, he, de in cursor.fetchall()
        ]
    return drifts

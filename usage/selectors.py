"""Reads of the usage app. Every usage figure comes from the hourly rollups (`UsageRollup`) and
the daily dimension rollups, never from a scan of the raw events.

Periods: usage is counted per hour, so a period's usage is that of the hours from the hour its
start falls in up to (not including) the hour its end falls in. Subscription periods begin and
end at the second the subscription started, so up to an hour of usage around a renewal counts
in the period its hour began in.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Max, Sum
from django.db.models.functions import TruncDay, TruncMonth
from django.utils.functional import empty

from billing.models import Organization, Plan
from billing.selectors import (
    ENTITLED_STATUSES,
    PERIOD_STATE_SQL,
    LazyOrganization,
    calendar_month,
    organization_billing_period,
    organization_period_state_get,
    period_state_from_row,
    plan_free_get,
    plan_overage_metrics,
)
from config.postgres import prepared
from credits.models import ZERO, CreditHold, HoldStatus
from credits.selectors import credit_amount_price

from .exceptions import percentage
from .models import Aggregation, Metric, UsageDimensionRollup, UsageDistinct, UsageRollup, UsageRollupDay


@dataclass(frozen=True)
class MetricInfo:
    id: int
    code: str
    name: str
    unit: str
    aggregation: str
    credits_per_unit: Decimal | None  # None: the metric charges no credits
    meter_event_name: str
    active: bool


_cache: dict = {}
_cache_lock = threading.Lock()
_SUMMARY_ROWS: dict = {}  # plan id -> (plan, catalogue, overage, rows): see _summary_rows


def _cached(key, load):
    """A per-process cache of catalogue rows (metrics and their prices, plans, overage prices)
    for `USAGE_CATALOG_CACHE_SECONDS`: the hot paths (track, ingestion, GET /usage) read them on
    every call, staff change them rarely; an edit takes effect within that many seconds."""
    ttl = settings.USAGE_CATALOG_CACHE_SECONDS
    if ttl <= 0:
        return load()
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    value = load()
    with _cache_lock:
        _cache[key] = (now + ttl, value)
    return value


def catalog_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()
        _SUMMARY_ROWS.clear()


def metric_catalog(*, include_inactive: bool = False) -> dict[str, MetricInfo]:
    """Metrics by code with the credit price they charge (one query, cached briefly)."""
    return _cached(("metrics", include_inactive), lambda: _metric_catalog(include_inactive))


def _metric_catalog(include_inactive: bool) -> dict[str, MetricInfo]:
    rows = Metric.objects.select_related("credit_price").order_by("sort_order", "code")
    if not include_inactive:
        rows = rows.filter(active=True)
    out = {}
    for metric in rows:
        price = metric.credit_price
        out[metric.code] = MetricInfo(
            id=metric.pk,
            code=metric.code,
            name=metric.name,
            unit=metric.unit,
            aggregation=metric.aggregation,
            credits_per_unit=price.credits_per_unit if price is not None and price.active else None,
            meter_event_name=metric.stripe_meter_event_name,
            active=metric.active,
        )
    return out


def metric_get(*, code: str) -> MetricInfo | None:
    return metric_catalog().get(code) if isinstance(code, str) and len(code) <= 64 else None


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class QuotaContext:
    """What the limits of an organization are now, and the period they count in."""

    organization_id: object
    plan: Plan
    period_start: datetime
    period_end: datetime
    overage: frozenset[str] = field(default_factory=frozenset)

    @cached_property
    def hour_from(self) -> datetime:
        return floor_hour(self.period_start)

    @cached_property
    def hour_to(self) -> datetime:
        return floor_hour(self.period_end)

    def limit(self, metric: str) -> Decimal | None:
        value = (self.plan.limits or {}).get(metric)
        return None if value is None else Decimal(value)

    def counts_now(self, occurred_at: datetime) -> bool:
        """Whether usage that occurred then counts in the current period (its hour is inside:
        the bounds are whole hours, so comparing the moment itself is the same)."""
        return self.hour_from <= occurred_at < self.hour_to


def _plan_of(organization: Organization) -> Plan:
    """The plan that applies (`organization_plan_get`), its row cached briefly."""
    return _plan_for(organization.plan_id, organization.subscription_status)


def _plan_for(plan_id: int | None, subscription_status: str) -> Plan:
    """`_plan_of` from the organization's plan id and subscription status."""
    if plan_id is not None and subscription_status in ENTITLED_STATUSES:
        return _cached(("plan", plan_id), lambda: Plan.objects.get(pk=plan_id))
    return _cached(("plan", "free"), plan_free_get)


def _overage_of(plan: Plan) -> frozenset[str]:
    return _cached(("overage", plan.pk), lambda: frozenset(plan_overage_metrics(plan=plan)))


def quota_context(*, organization: Organization, now: datetime) -> QuotaContext:
    plan = _plan_of(organization)
    start, end = organization_billing_period(organization=organization, now=now)
    return QuotaContext(
        organization_id=organization.pk,
        plan=plan,
        period_start=start,
        period_end=end,
        overage=_overage_of(plan),
    )


def usage_current(
    *, organization_id, metric: MetricInfo, hour_from: datetime, hour_to: datetime, with_holds: bool = True
) -> Decimal:
    """The metric's usage over [hour_from, hour_to) by its aggregation, plus what active
    reservations hold of it (sum and count metrics), from the rollups."""
    if metric.aggregation == Aggregation.UNIQUE:
        return Decimal(
            UsageDistinct.objects.filter(
                organization_id=organization_id, metric_id=metric.id, hour__gte=hour_from, hour__lt=hour_to
            )
            .values("value")
            .distinct()
            .count()
        )
    total, events, largest = _period_totals(organization_id, hour_from, hour_to, metric.id).get(
        metric.id, (ZERO, 0, ZERO)
    )
    if metric.aggregation == Aggregation.MAX:
        return largest
    used = Decimal(events) if metric.aggregation == Aggregation.COUNT else total
    if with_holds:
        used += usage_held(organization_id=organization_id, metric=metric)
    return used


def usage_held(*, organization_id, metric: MetricInfo) -> Decimal:
    """What the active reservations of a sum or count metric hold of its quota."""
    if metric.aggregation not in (Aggregation.SUM, Aggregation.COUNT):
        return ZERO
    holds = CreditHold.objects.filter(
        organization_id=organization_id, event_name=metric.code, status=HoldStatus.HELD
    )
    if metric.aggregation == Aggregation.COUNT:
        return Decimal(holds.count())
    return holds.aggregate(v=Sum("quantity"))["v"] or ZERO


def unique_value_seen(*, organization_id, metric: MetricInfo, hour_from, hour_to, value: str) -> bool:
    return UsageDistinct.objects.filter(
        organization_id=organization_id,
        metric_id=metric.id,
        hour__gte=hour_from,
        hour__lt=hour_to,
        value=value,
    ).exists()


def quota_context_for_ingestion(*, organization: Organization, now: datetime) -> QuotaContext:
    """`quota_context`. When the caller holds only the organization's id (an API key's
    `billing.selectors.LazyOrganization`, not read yet), the plan, status and period come from one
    prepared statement by that id (`billing.selectors.organization_period_state_get`: the few
    keys of the subscription's mirror the period depends on) instead of the whole organization
    through the ORM and the whole mirrored subscription: the same fresh values, a 404 when it is
    gone. For `POST /usage/events` and `POST /usage/track`."""
    if type(organization) is not LazyOrganization or organization._wrapped is not empty:
        return quota_context(organization=organization, now=now)
    state = organization_period_state_get(organization_id=organization.pk, now=now)
    plan = _plan_for(state.plan_id, state.subscription_status)
    return QuotaContext(
        organization_id=organization.pk,
        plan=plan,
        period_start=state.period_start,
        period_end=state.period_end,
        overage=_overage_of(plan),
    )


# --------------------------------------------------------------------------- GET /usage
class MetricUsage(NamedTuple):
    """One metric of `usage_summary_get` (a named tuple: built for every metric on every call)."""

    metric: str
    name: str
    unit: str
    current: Decimal
    limit: Decimal | None
    percentage: float | None
    unlimited: bool
    soft_limit_warning: bool  # at or past 80 %
    limit_reached: bool  # at or past 100 %
    overage_billed: bool  # past the limit is billed, not refused


@dataclass(frozen=True)
class UsageSummary:
    period_start: datetime
    period_end: datetime
    usage: list[MetricUsage]


PERIOD_TOTALS_SQL = f"""
SELECT metric_id, sum(quantity), sum(events), max(quantity_max) FROM (
    SELECT metric_id, quantity, events, quantity_max FROM {UsageRollupDay._meta.db_table}
    WHERE organization_id = %(org)s AND day >= %(day_from)s AND day < %(day_to)s
      AND %(metric)s IN (0, metric_id)
    UNION ALL
    SELECT metric_id, quantity, events, quantity_max FROM {UsageRollup._meta.db_table}
    WHERE organization_id = %(org)s AND %(metric)s IN (0, metric_id)
      AND ((hour >= %(hour_from)s AND hour < %(day_from)s) OR (hour >= %(day_to)s AND hour < %(hour_to)s))
) t GROUP BY metric_id
"""  # noqa: S608 - table names are the models' own


def _period_params(organization_id, hour_from, hour_to, metric_id: int = 0) -> dict:
    """PERIOD_TOTALS_SQL's parameters over [hour_from, hour_to): whole days from the daily
    rollups, the partial first and last days from the hourly ones (two index ranges)."""
    day_from = floor_day(hour_from)
    if day_from < hour_from:
        day_from += timedelta(days=1)
    day_to = floor_day(hour_to)
    if day_from >= day_to:  # within one day, or two partial ones: hours only
        day_from = day_to = hour_to
    return {
        "org": organization_id, "metric": metric_id, "hour_from": hour_from, "hour_to": hour_to,
        "day_from": day_from, "day_to": day_to,
    }  # fmt: skip


def _period_totals(organization_id, hour_from, hour_to, metric_id: int = 0) -> dict[int, tuple]:
    """metric id -> (sum of quantities, events, max) over [hour_from, hour_to)."""
    with connection.cursor() as cursor:
        cursor.execute(PERIOD_TOTALS_SQL, _period_params(organization_id, hour_from, hour_to, metric_id))
        return {row[0]: (row[1], row[2], row[3]) for row in cursor.fetchall()}


def _summary_rows(plan: Plan, catalog: dict[str, MetricInfo], overage: frozenset[str]) -> list[tuple]:
    """What `usage_summary_get` shows of each active metric that does not depend on usage: the
    metric, its limit under the plan (None: unlimited), whether overage is billed, and its row
    with no usage in the period (most metrics of most organizations). Kept while the catalogue
    cache (`_cached`) hands out the same plan, metrics and overage objects, so an edit takes
    effect when theirs does."""
    hit = _SUMMARY_ROWS.get(plan.pk)
    if hit is not None and hit[0] is plan and hit[1] is catalog and hit[2] is overage:
        return hit[3]
    limits = plan.limits or {}
    rows = []
    for metric in catalog.values():
        limit = limits.get(metric.code)
        limit = None if limit is None else Decimal(limit)
        billed = metric.code in overage
        rows.append((metric, limit, billed, _metric_usage(metric, ZERO, limit, billed)))
    _SUMMARY_ROWS[plan.pk] = (plan, catalog, overage, rows)
    return rows


def _metric_usage(metric: MetricInfo, current: Decimal, limit: Decimal | None, billed: bool) -> MetricUsage:
    if limit is None:
        return MetricUsage(
            metric.code, metric.name, metric.unit, current, None, None, True, False, False, billed
        )
    pct = percentage(current, limit)
    return MetricUsage(
        metric.code, metric.name, metric.unit, current, limit, pct, False, pct >= 80, pct >= 100, billed
    )


# The organization's period state (PERIOD_STATE_SQL) and its usage totals over a period given in
# advance (PERIOD_TOTALS_SQL's parameters), in one statement: the totals as [metric id, sum of
# quantities, events, max] rows of one array (NULL: no usage).
SUMMARY_SQL = f"""
SELECT st.*, (
    SELECT array_agg(ARRAY[metric_id::numeric, quantity, events::numeric, quantity_max])
    FROM ({PERIOD_TOTALS_SQL}) AS t (metric_id, quantity, events, quantity_max)
) FROM ({PERIOD_STATE_SQL}) AS st
"""  # noqa: S608 - the statements above

# organization id -> the period its last summary in this process counted in: the guess the next
# summary reads the totals of, in the statement that reads the period (a wrong guess, a period
# that turned, costs a second statement, never a wrong answer). Bounded; cleared when full.
_PERIOD_GUESSES: dict = {}
_PERIOD_GUESSES_MAX = 10_000


def usage_summary_get(*, organization: Organization, now: datetime) -> UsageSummary:
    """The current period's usage of every active metric against the plan's limits.

    One round trip by the organization's id as a rule (the organization is not read otherwise):
    SUMMARY_SQL reads its plan, status and subscription period, and the usage totals of the
    period this process saw it in last (the calendar month the first time: the Free plan's
    period); when the period turns out to be another one (its first summary here with a
    subscription, a renewal), the totals of the right one are read in a second statement
    (prepared). Unique-count metrics with usage in the period add one each. The catalogue rows
    (metrics, plans, overage prices) come from the brief cache of `_cached`; usage totals are
    never cached."""
    from config.exceptions import NotFound

    org_id = organization.pk
    guess = _PERIOD_GUESSES.get(org_id)
    if guess is None or not guess[0] <= now < guess[1]:
        guess = calendar_month(now)
    row = prepared.fetchone(SUMMARY_SQL, _period_params(org_id, floor_hour(guess[0]), floor_hour(guess[1])))
    if row is None:  # deleted while the caller held it
        raise NotFound("Organization not found.")
    state = period_state_from_row(row[0], row[1], row[2], now=now)
    period = (state.period_start, state.period_end)
    hour_from, hour_to = floor_hour(state.period_start), floor_hour(state.period_end)
    if period == guess:
        totals = {int(t[0]): (t[1], int(t[2]), t[3]) for t in row[3] or ()}
    else:
        totals = {
            t[0]: t[1:]
            for t in prepared.fetchall(PERIOD_TOTALS_SQL, _period_params(org_id, hour_from, hour_to))
        }
        if len(_PERIOD_GUESSES) >= _PERIOD_GUESSES_MAX:
            _PERIOD_GUESSES.clear()
        _PERIOD_GUESSES[org_id] = period
    plan = _plan_for(state.plan_id, state.subscription_status)
    out = []
    for metric, limit, billed, no_usage in _summary_rows(plan, metric_catalog(), _overage_of(plan)):
        found = totals.get(metric.id)
        if found is None:
            out.append(no_usage)
            continue
        total, events, largest = found
        aggregation = metric.aggregation
        if aggregation == Aggregation.COUNT:
            current = Decimal(events)
        elif aggregation == Aggregation.MAX:
            current = largest
        elif aggregation == Aggregation.UNIQUE:
            current = usage_current(
                organization_id=org_id, metric=metric, hour_from=hour_from, hour_to=hour_to
            )
        else:
            current = total
        out.append(_metric_usage(metric, current, limit, billed))
    return UsageSummary(period_start=state.period_start, period_end=state.period_end, usage=out)


# --------------------------------------------------------------------------- series and stats
@dataclass(frozen=True)
class SeriesPoint:
    bucket: datetime
    quantity: Decimal
    events: int
    credits: Decimal


@dataclass(frozen=True)
class UsageSeries:
    metric: str
    start: datetime
    end: datetime
    group_by: str
    total: Decimal
    credits: Decimal
    series: list[SeriesPoint]


def usage_series_get(
    *, organization: Organization, metric: MetricInfo, start: datetime, end: datetime, group_by: str
) -> UsageSeries:
    """Usage of one metric per hour, day or month (UTC) over [start, end), from the rollups."""
    rows = UsageRollup.objects.filter(
        organization_id=organization.pk, metric_id=metric.id, hour__gte=floor_hour(start), hour__lt=end
    )
    if group_by == "hour":
        points = rows.values_list("hour", "quantity", "events", "credits", "quantity_max").order_by("hour")
        series = [SeriesPoint(h, q if metric.aggregation != "max" else m, e, c) for h, q, e, c, m in points]
    else:
        trunc = TruncDay("hour", tzinfo=UTC) if group_by == "day" else TruncMonth("hour", tzinfo=UTC)
        grouped = (
            rows.annotate(bucket=trunc)
            .values("bucket")
            .annotate(q=Sum("quantity"), e=Sum("events"), c=Sum("credits"), m=Max("quantity_max"))
            .order_by("bucket")
        )
        series = [
            SeriesPoint(g["bucket"], g["q"] if metric.aggregation != "max" else g["m"], g["e"], g["c"])
            for g in grouped
        ]
    if metric.aggregation == Aggregation.COUNT:
        series = [SeriesPoint(p.bucket, Decimal(p.events), p.events, p.credits) for p in series]
    if metric.aggregation == Aggregation.MAX:
        total = max((p.quantity for p in series), default=ZERO)
    else:
        total = sum((p.quantity for p in series), ZERO)
    return UsageSeries(
        metric=metric.code,
        start=start,
        end=end,
        group_by=group_by,
        total=total,
        credits=sum((p.credits for p in series), ZERO),
        series=series,
    )


@dataclass(frozen=True)
class MetricTotals:
    metric: str
    quantity: Decimal
    events: int
    credits: Decimal
    credits_per_unit: Decimal | None  # average cost per unit; None when nothing was used


@dataclass(frozen=True)
class UsageStats:
    start: datetime
    end: datetime
    events: int
    credits: Decimal
    metrics: list[MetricTotals]
    top_dimensions: dict[str, list[tuple[str, Decimal, int]]]
    peak_hours: list[tuple[int, Decimal, int]]  # (hour of day UTC, quantity, events), busiest first


def usage_stats_get(
    *, organization: Organization, start: datetime, end: datetime, dimension: str | None = None, top: int = 5
) -> UsageStats:
    """Totals per metric, credits, average cost per unit, the top values of the rolled-up
    dimensions (or of one), and the busiest hours of the day, from the rollups."""
    catalog = {m.id: m for m in metric_catalog(include_inactive=True).values()}
    rows = UsageRollup.objects.filter(
        organization_id=organization.pk, hour__gte=floor_hour(start), hour__lt=end
    )
    per_metric = rows.values("metric_id").annotate(q=Sum("quantity"), e=Sum("events"), c=Sum("credits"))
    metrics = []
    for row in per_metric.order_by("metric_id"):
        info = catalog.get(row["metric_id"])
        if info is None:
            continue
        quantity = Decimal(row["e"]) if info.aggregation == Aggregation.COUNT else row["q"]
        metrics.append(
            MetricTotals(
                metric=info.code,
                quantity=quantity,
                events=row["e"],
                credits=row["c"],
                credits_per_unit=(row["c"] / quantity).quantize(Decimal("0.0001")) if quantity else None,
            )
        )
    metrics.sort(key=lambda m: m.metric)
    dims = UsageDimensionRollup.objects.filter(
        organization_id=organization.pk,
        day__gte=start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0),
        day__lt=end,
    )
    if dimension:
        dims = dims.filter(key=dimension)
    top_dimensions: dict[str, list[tuple[str, Decimal, int]]] = {}
    grouped = (
        dims.values("key", "value")
        .annotate(q=Sum("quantity"), e=Sum("events"))
        .order_by("key", "-e", "value")
    )
    for row in grouped:
        values = top_dimensions.setdefault(row["key"], [])
        if len(values) < top:
            values.append((row["value"], row["q"], row["e"]))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT extract(hour FROM hour AT TIME ZONE 'UTC')::int AS h, sum(quantity), sum(events) "  # noqa: S608
            f"FROM {UsageRollup._meta.db_table} WHERE organization_id = %s AND hour >= %s AND hour < %s "
            "GROUP BY h ORDER BY sum(events) DESC, h LIMIT 3",
            [organization.pk, floor_hour(start), end],
        )
        peaks = [(h, q, e) for h, q, e in cursor.fetchall()]
    return UsageStats(
        start=start,
        end=end,
        events=sum(m.events for m in metrics),
        credits=sum((m.credits for m in metrics), ZERO),
        metrics=metrics,
        top_dimensions=top_dimensions,
        peak_hours=peaks,
    )


@dataclass(frozen=True)
class CostEstimate:
    metric: str
    quantity: Decimal
    credits: Decimal
    amount: int
    currency: str


def usage_cost_estimate(*, metric: MetricInfo, quantity: Decimal) -> CostEstimate:
    """What `quantity` of the metric costs in credits, and those credits in money (at the unit
    price of the smallest credit pack on sale)."""
    from credits.formatting import quantize

    credits = quantize((metric.credits_per_unit or ZERO) * quantity)
    if credits > 0:
        amount, currency = credit_amount_price(credits=credits)
    else:
        amount, currency = 0, "usd"
    return CostEstimate(
        metric=metric.code, quantity=quantity, credits=credits, amount=amount, currency=currency
    )


def event_counts(*, organization_id) -> dict[str, int]:
    """Events per metric code, from the rollups (for the demo and the admin)."""
    catalog = {m.id: m.code for m in metric_catalog(include_inactive=True).values()}
    rows = (
        UsageRollup.objects.filter(organization_id=organization_id)
        .values("metric_id")
        .annotate(n=Sum("events"))
    )
    return {catalog.get(r["metric_id"], str(r["metric_id"])): r["n"] for r in rows}


def usage_reservation_list(*, organization: Organization, status: str | None = None):
    holds = CreditHold.objects.filter(organization=organization).order_by("-created_at", "pk")
    return holds.filter(status=status) if status else holds

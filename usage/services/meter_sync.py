"""Usage above the plan's limit, sent to Stripe meters for subscriptions with a metered price.

Two steps, so nothing is ever sent twice:
1. Queue (in a transaction, the report row locked): for each metered metric of the
   organization's subscription, the period's usage above the plan's limit (from the rollups,
   rounded to whole units: meters take integers) is compared with what was already reported
   for the period (`UsageMeterReport.reported`); the difference becomes a `UsageMeterEvent` row
   whose identifier is derived from organization, metric, period and the total it brings the
   period to. Run again with no new usage, it queues nothing.
2. Send the queued rows in order, at most `USAGE_METER_EVENTS_PER_SECOND`, backing off on 429
   (Stripe's `Retry-After`). Stripe refuses a repeated identifier, so a row sent before a crash
   and sent again is marked `duplicate`, not counted twice.

Event timestamps are now, kept inside the period (minute-aligned, as Stripe's summaries are), so
the usage lands on the invoice of the period it belongs to -- and inside what Stripe accepts: a
meter event stamped more than 35 days before Stripe's "now" for the customer, or more than
5 minutes after it, is refused. Stripe's now is the real time, or the frozen time of the
customer's test clock (test mode), which can be months ahead of the real time or behind it. The
stamp is chosen once, when the row is queued, and kept on the row: a resend carries the same
identifier, timestamp and idempotency key. Usage whose period lies wholly outside Stripe's window
(a backlog older than 35 days, or a period a test clock has left long ago) cannot be billed any
more: its row is marked `expired` and an alert raised, instead of being sent, refused, and
reported as drift at every reconcile.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing.exceptions import StripeRateLimited, StripeUnavailable
from billing.models import Organization
from billing.selectors import MeteredUsage, organization_metered_usage, organizations_with_live_subscription
from billing.services import stripe_customer_now, stripe_meter_event_send, stripe_meter_usage_total
from config.alerts import ops_alert
from config.backoff import backoff_delay
from config.exceptions import ApplicationError

from ..models import MeterEventStatus, SyncStatus, UsageMeterEvent, UsageMeterReport, UsageSyncState
from ..selectors import metric_catalog, quota_context, usage_current

logger = logging.getLogger(__name__)

MAX_RATE_LIMIT_RETRIES = 5
MAX_BACKOFF = 30.0


@dataclass
class SyncResult:
    queued: int = 0
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    expired: int = 0


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def meter_window(period_start: datetime, period_end: datetime) -> tuple[datetime, datetime]:
    """The minute-aligned window Stripe's summary is asked for: events are stamped in
    [period_start, floor(period_end)), so each period's events fall in its own window."""
    return _floor_minute(period_start), _floor_minute(period_end)


def meter_identifier(organization_id, metric: str, period_start: datetime, total: int) -> str:
    raw = f"{organization_id}:{metric}:{int(period_start.timestamp())}:{total}"
    return "usg_" + hashlib.sha256(raw.encode()).hexdigest()[:40]


# Stripe refuses meter events stamped more than 35 days before its now or 5 minutes after; the
# stamps chosen here keep an hour's margin on the old side (a queued row waits for its send) and
# never run ahead of Stripe's now.
STRIPE_MAX_AGE = timedelta(days=35)
STAMP_AGE_MARGIN = timedelta(hours=1)


def _epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def meter_stamp(
    *, now: datetime, stripe_now: datetime, period_start: datetime, period_end: datetime
) -> datetime | None:
    """The timestamp of a meter event for a period: `now`, kept inside the period's meter window
    and inside what Stripe accepts for the customer (`stripe_now`: its test clock's time, or the
    real time); None when the two do not meet (the period is outside Stripe's window)."""
    low = max(period_start, stripe_now - STRIPE_MAX_AGE + STAMP_AGE_MARGIN)
    high = min(_floor_minute(period_end) - timedelta(seconds=1), stripe_now)
    if low > high:
        return None
    return min(max(now, low), high)


def _expired_alert(event: UsageMeterEvent, stripe_now: datetime) -> None:
    ops_alert(
        "meter_event_outside_stripe_window",
        f"organization {event.organization_id}: {event.value} unit(s) of {event.meter_event_name} for the "
        f"period from {event.period_start:%Y-%m-%d %H:%M} UTC cannot be billed: Stripe's time for customer "
        f"{event.customer_id} is {stripe_now:%Y-%m-%d %H:%M} UTC, and it refuses meter events older than "
        "35 days (marked expired, not sent)",
        subject=str(event.organization_id),
    )


def _whole(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usage_meter_events_queue(
    *, organization: Organization, now: datetime | None = None, result: SyncResult | None = None
) -> int:
    """Step 1: queue what the period's usage above the limit adds to what was reported. Answers
    how many rows were queued to be sent; a row recorded as expired at once (its period wholly
    outside Stripe's window) is not one of them, and counts in `result.expired` when given."""
    now = now or timezone.now()
    metered = organization_metered_usage(organization=organization)
    if not metered:
        return 0
    ctx = quota_context(organization=organization, now=now)
    catalog = metric_catalog(include_inactive=True)
    stripe_now = {}  # per customer: Stripe's time for it (a test clock's, or the real time)
    queued = 0
    for item in metered:
        info = catalog.get(item.metric)
        if info is None:
            continue
        used = usage_current(
            organization_id=organization.pk,
            metric=info,
            hour_from=ctx.hour_from,
            hour_to=ctx.hour_to,
            with_holds=False,
        )
        above = max(0, _whole(used) - item.included)
        if above and item.customer_id not in stripe_now:  # read before any row is locked
            stripe_now[item.customer_id] = _epoch(stripe_customer_now(customer_id=item.customer_id))
        with transaction.atomic():
            UsageMeterReport.objects.bulk_create(
                [
                    UsageMeterReport(
                        organization_id=organization.pk,
                        metric_id=info.id,
                        period_start=ctx.period_start,
                        period_end=ctx.period_end,
                        included=item.included,
                        updated_at=now,
                    )
                ],
                ignore_conflicts=True,
            )
            report = UsageMeterReport.objects.select_for_update().get(
                organization_id=organization.pk, metric_id=info.id, period_start=ctx.period_start
            )
            if above <= report.reported:
                continue
            stamp = meter_stamp(
                now=now,
                stripe_now=stripe_now[item.customer_id],
                period_start=ctx.period_start,
                period_end=ctx.period_end,
            )
            event = UsageMeterEvent.objects.create(
                organization_id=organization.pk,
                identifier=meter_identifier(organization.pk, info.code, ctx.period_start, above),
                metric_id=info.id,
                meter_event_name=item.meter_event_name,
                customer_id=item.customer_id,
                period_start=ctx.period_start,
                value=above - report.reported,
                timestamp=stamp or ctx.period_start,
                status=MeterEventStatus.PENDING if stamp else MeterEventStatus.EXPIRED,
                error="" if stamp else "the period is outside Stripe's 35-day window for meter events",
                created_at=now,
            )
            if stamp is None:
                transaction.on_commit(
                    lambda event=event, at=stripe_now[item.customer_id]: _expired_alert(event, at)
                )
            UsageMeterReport.objects.filter(
                organization_id=organization.pk, metric_id=info.id, period_start=ctx.period_start
            ).update(reported=above, updated_at=now)
            if stamp is None:  # recorded as expired, never to be sent
                if result is not None:
                    result.expired += 1
            else:
                queued += 1
    return queued


def _send(event: UsageMeterEvent, sleep) -> str:
    """Send one queued event; answers its new status. Backs off on 429 (bounded, jittered, at
    least Stripe's Retry-After); after `MAX_RATE_LIMIT_RETRIES` it gives up (StripeRateLimited:
    the task retries later, the row stays queued)."""
    for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
        try:
            recorded = stripe_meter_event_send(
                event_name=event.meter_event_name,
                customer_id=event.customer_id,
                value=event.value,
                identifier=event.identifier,
                timestamp=int(event.timestamp.timestamp()),
            )
            return MeterEventStatus.SENT if recorded else MeterEventStatus.DUPLICATE
        except StripeRateLimited as exc:
            if attempt == MAX_RATE_LIMIT_RETRIES:
                raise
            wait = backoff_delay(attempt, retry_after=exc.retry_after, cap=MAX_BACKOFF)
            logger.info("meter sync: rate limited by Stripe, waiting %.1f s", wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


STRIPE_METER_WINDOW = timedelta(days=35)


def usage_meter_backlog_check(*, organization: Organization, now: datetime | None = None) -> str | None:
    """Stripe refuses meter events stamped more than 35 days ago: usage still unsent after
    `USAGE_METER_BACKLOG_ALERT_DAYS` (30) is about to be lost to billing. Alerts the operators
    (once an hour per organization) and answers the alert's text, or None."""
    now = now or timezone.now()
    oldest = (
        UsageMeterEvent.objects.filter(
            organization_id=organization.pk, status__in=[MeterEventStatus.PENDING, MeterEventStatus.FAILED]
        )
        .order_by("timestamp")
        .values_list("timestamp", flat=True)
        .first()
    )
    if oldest is None or now - oldest < timedelta(days=settings.USAGE_METER_BACKLOG_ALERT_DAYS):
        return None
    left = STRIPE_METER_WINDOW - (now - oldest)
    message = (
        f"organization {organization.pk}: usage unsent to Stripe since {oldest:%Y-%m-%d %H:%M} UTC; "
        f"Stripe refuses it in {max(left.total_seconds(), 0) / 86400:.1f} days"
    )
    ops_alert("meter_backlog_near_stripe_window", message, subject=str(organization.pk))
    return message


def usage_meter_sync(
    *, organization: Organization, now: datetime | None = None, sleep=time.sleep
) -> SyncResult:
    """Queue the organization's new usage above its limits and send what is queued (batched,
    paced, backing off on 429). Progress is kept in `UsageSyncState` for the admin. Raises
    `StripeUnavailable` (the task retries later; queued rows stay queued)."""
    result = SyncResult()
    usage_meter_backlog_check(organization=organization, now=now)
    state, _ = UsageSyncState.objects.get_or_create(organization=organization)
    UsageSyncState.objects.filter(pk=state.pk).update(
        status=SyncStatus.RUNNING,
        last_started_at=timezone.now(),
        progress_done=0,
        progress_total=0,
        last_error="",
    )
    try:
        result.queued = usage_meter_events_queue(organization=organization, now=now, result=result)
        pending = list(
            UsageMeterEvent.objects.filter(
                organization_id=organization.pk, status=MeterEventStatus.PENDING
            ).order_by("created_at", "identifier")[: settings.USAGE_METER_SYNC_BATCH]
        )
        UsageSyncState.objects.filter(pk=state.pk).update(progress_total=len(pending))
        interval = (
            1.0 / settings.USAGE_METER_EVENTS_PER_SECOND if settings.USAGE_METER_EVENTS_PER_SECOND else 0
        )
        stripe_now: dict[str, datetime] = {}
        for done, event in enumerate(pending, start=1):
            started = time.monotonic()
            if event.customer_id not in stripe_now:
                stripe_now[event.customer_id] = _epoch(stripe_customer_now(customer_id=event.customer_id))
            try:
                if event.timestamp < stripe_now[event.customer_id] - STRIPE_MAX_AGE:
                    # Queued in time, unsent since (an outage longer than Stripe's window).
                    raise ApplicationError(
                        "Older than Stripe's 35-day window for meter events: not sent",
                        extra={"param": "timestamp"},
                    )
                status = _send(event, sleep)
                error = ""
            except StripeUnavailable:
                UsageMeterEvent.objects.filter(pk=event.pk).update(attempts=event.attempts + 1)
                raise
            except ApplicationError as exc:
                if exc.extra.get("param") == "timestamp":  # Stripe's window, not a bad request
                    status = MeterEventStatus.EXPIRED
                    transaction.on_commit(
                        lambda event=event, at=stripe_now[event.customer_id]: _expired_alert(event, at)
                    )
                else:
                    status = MeterEventStatus.FAILED
                error = exc.message[:500]
                logger.warning("meter sync: Stripe refused %s: %s", event.identifier, exc.message)
            UsageMeterEvent.objects.filter(pk=event.pk).update(
                status=status, error=error, attempts=event.attempts + 1, sent_at=timezone.now()
            )
            if status == MeterEventStatus.SENT:
                result.sent += 1
            elif status == MeterEventStatus.DUPLICATE:
                result.duplicates += 1
            elif status == MeterEventStatus.EXPIRED:
                result.expired += 1
            else:
                result.failed += 1
            UsageSyncState.objects.filter(pk=state.pk).update(progress_done=done)
            spare = interval - (time.monotonic() - started)
            if spare > 0:
                sleep(spare)
    except Exception as exc:
        UsageSyncState.objects.filter(pk=state.pk).update(
            status=SyncStatus.FAILED, last_finished_at=timezone.now(), last_error=str(exc)[:500]
        )
        raise
    UsageSyncState.objects.filter(pk=state.pk).update(
        status=SyncStatus.IDLE,
        last_finished_at=timezone.now(),
        last_success_at=timezone.now(),
        events_sent=F("events_sent") + result.sent,
        last_error="" if not result.failed else f"{result.failed} event(s) refused by Stripe",
    )
    return result


def usage_meter_sync_queue(*, organization: Organization) -> UsageSyncState:
    """Mark the organization's sync as queued and enqueue it after commit (`POST /usage/sync`,
    the admin's "sync now")."""
    from ..tasks import meter_sync_task

    state, _ = UsageSyncState.objects.get_or_create(organization=organization)
    UsageSyncState.objects.filter(pk=state.pk).update(
        status=SyncStatus.QUEUED, progress_done=0, progress_total=0
    )
    organization_id = str(organization.pk)
    transaction.on_commit(lambda: meter_sync_task.delay(organization_id))
    state.refresh_from_db()
    return state


def organizations_metered() -> list[Organization]:
    """Organizations whose live subscription carries a metered price (the beat task's list)."""
    return [o for o in organizations_with_live_subscription() if organization_metered_usage(organization=o)]


# --------------------------------------------------------------------------- drift
def _stripe_total(organization: Organization, item: MeteredUsage, period_start, period_end) -> int:
    start, end = meter_window(period_start, period_end)
    return stripe_meter_usage_total(
        meter_id=item.meter_id,
        customer_id=item.customer_id,
        start_time=int(start.timestamp()),
        end_time=int(end.timestamp()),
    )


def usage_meter_drift_list(*, organization_ids: list | None = None, now: datetime | None = None) -> list[str]:
    """Per organization and metered metric, the current period: what Stripe's meter summed
    against what was sent from here, usage above the limit not reported yet (once the sync had
    its chance, an hour), and events Stripe refused. Empty: no drift."""
    now = now or timezone.now()
    drifts = []
    organizations = organizations_with_live_subscription()
    if organization_ids:
        organizations = organizations.filter(pk__in=organization_ids)
    catalog = metric_catalog(include_inactive=True)
    for organization in organizations.order_by("pk"):
        ctx = None
        for item in organization_metered_usage(organization=organization):
            ctx = ctx or quota_context(organization=organization, now=now)
            info = catalog.get(item.metric)
            if info is None:
                continue
            where = f"organization {organization.pk}: {item.metric}"
            events = UsageMeterEvent.objects.filter(
                organization_id=organization.pk, metric_id=info.id, period_start=ctx.period_start
            )
            sent = (
                events.filter(status__in=[MeterEventStatus.SENT, MeterEventStatus.DUPLICATE]).aggregate(
                    v=Sum("value")
                )["v"]
                or 0
            )
            on_stripe = _stripe_total(organization, item, ctx.period_start, ctx.period_end)
            if on_stripe != sent:
                drifts.append(
                    f"{where}: Stripe's meter has {on_stripe} for the period, {sent} were sent from here"
                )
            failed = events.filter(status=MeterEventStatus.FAILED).count()
            if failed:
                drifts.append(f"{where}: {failed} meter event(s) refused by Stripe")
            stale = events.filter(
                status=MeterEventStatus.PENDING, created_at__lt=now - timedelta(hours=1)
            ).count()
            if stale:
                drifts.append(f"{where}: {stale} meter event(s) queued for over an hour")
            backlog = usage_meter_backlog_check(organization=organization, now=now)
            if backlog:
                drifts.append(backlog)
            used = usage_current(
                organization_id=organization.pk,
                metric=info,
                hour_from=ctx.hour_from,
                hour_to=ctx.hour_to,
                with_holds=False,
            )
            above = max(0, _whole(used) - item.included)
            report = UsageMeterReport.objects.filter(
                organization_id=organization.pk, metric_id=info.id, period_start=ctx.period_start
            ).first()
            reported = report.reported if report else 0
            if above != reported and (report is None or report.updated_at < now - timedelta(hours=1)):
                drifts.append(f"{where}: {above} units above the limit, {reported} reported to Stripe")
    return drifts

"""Period close: every organization's statement for last month, issued by independent tasks.

The hourly beat task (`invoices.period_close_task`) makes the `PeriodClose` of the month that
ended and enqueues one `invoices.statement_close_task` per organization still without its
statement; each task issues that organization's statement and is safe to run twice (the database
allows one statement per organization and close). Progress is the number of statements issued;
organizations whose task was lost or failed are dispatched again by the next beat run, until
every one has its statement. The period is the calendar month in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from billing.models import Organization

from ..models import Invoice, PeriodClose
from ..tasks import statement_close_task
from .statements import statement_generate

REDISPATCH_AFTER = timedelta(minutes=50)
ACTOR = "system:period_close"


def previous_month(now: datetime) -> tuple[datetime, datetime]:
    now = now.astimezone(UTC)
    end = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=1)).replace(day=1)
    return start, end


def period_close_organizations(*, close: PeriodClose):
    return Organization.objects.filter(created_at__lt=close.period_end)


def period_close_missing(*, close: PeriodClose):
    """The organizations of the close that have no statement for it yet."""
    closed = Invoice.objects.filter(period_close=close).values("organization_id")
    return period_close_organizations(close=close).exclude(pk__in=closed)


def period_close_progress(*, close: PeriodClose) -> tuple[int, int]:
    """(statements issued, organizations to close)."""
    return Invoice.objects.filter(period_close=close).count(), close.organizations


def period_close_dispatch(*, close: PeriodClose) -> int:
    """Enqueue a task for every organization still missing its statement. Answers how many."""
    missing = list(period_close_missing(close=close).values_list("pk", flat=True))
    PeriodClose.objects.filter(pk=close.pk).update(
        dispatched_at=timezone.now(),
        dispatches=F("dispatches") + 1,
        organizations=period_close_organizations(close=close).count(),
    )
    for organization_id in missing:
        statement_close_task.delay(close.pk, str(organization_id))
    return len(missing)


def period_close_run(*, now: datetime | None = None) -> PeriodClose:
    """Beat: close last month. Dispatches the missing organizations when never dispatched, or
    when the last dispatch is old enough for its tasks to have run; marks the close finished
    once every organization has its statement."""
    now = now or timezone.now()
    start, end = previous_month(now)
    close, _ = PeriodClose.objects.get_or_create(period_start=start, period_end=end)
    if close.finished_at is not None:
        return close
    if not period_close_missing(close=close).exists():
        PeriodClose.objects.filter(pk=close.pk).update(
            finished_at=now, organizations=period_close_organizations(close=close).count()
        )
    elif close.dispatched_at is None or now - close.dispatched_at >= REDISPATCH_AFTER:
        period_close_dispatch(close=close)
    close.refresh_from_db()
    return close


def statement_close_organization(*, close_id: int, organization_id) -> Invoice | None:
    """The task body: the organization's statement for the close, issued once. Answers the
    statement (a rerun answers the one already issued)."""
    close = PeriodClose.objects.get(pk=close_id)
    existing = Invoice.objects.filter(period_close=close, organization_id=organization_id).first()
    if existing is not None:
        return existing
    organization = Organization.objects.get(pk=organization_id)
    try:
        return statement_generate(
            organization=organization,
            period_start=close.period_start,
            period_end=close.period_end,
            actor=ACTOR,
            period_close=close,
        )
    except IntegrityError:  # the same task ran at the same time and won: its statement stands
        return Invoice.objects.filter(period_close=close, organization_id=organization_id).first()

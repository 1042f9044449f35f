"""Period close: every organization's statement for last month, issued by independent tasks.

The hourly beat task (`invoices.period_close_task`) makes the `PeriodClose` of the month that
ended and enqueues one `invoices.statements_close_chunk_task` per chunk of organizations still
without their statement (`INVOICES_CLOSE_CHUNK`, 250 by default). Each task issues its chunk's
statements set-based in one transaction (one ledger query, one usage query, bulk inserts; see
`statements.statements_issue`) and is safe to run twice: organizations that already have their
statement for the close are skipped after their sequence rows are locked, and the database allows
one statement per organization and close. A chunk that fails for another reason than the
database being busy falls back to one transaction per organization, so one bad organization
never holds back the others. Progress is the number of statements issued; organizations whose
task was lost or failed are dispatched again by the next beat run, until every one has its
statement. The period is the calendar month in UTC.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError
from django.db.models import F
from django.utils import timezone

from billing.models import Organization

from ..models import Invoice, PeriodClose
from ..tasks import statements_close_chunk_task
from .statements import statement_generate, statements_issue

logger = logging.getLogger(__name__)

REDISPATCH_AFTER = timedelta(minutes=50)
ACTOR = "system:period_close"


def close_chunk_size() -> int:
    return max(1, int(getattr(settings, "INVOICES_CLOSE_CHUNK", 250)))


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
    """Enqueue a task for every chunk of organizations still missing their statement. Answers
    how many organizations."""
    missing = [
        str(pk) for pk in period_close_missing(close=close).order_by("pk").values_list("pk", flat=True)
    ]
    PeriodClose.objects.filter(pk=close.pk).update(
        dispatched_at=timezone.now(),
        dispatches=F("dispatches") + 1,
        organizations=period_close_organizations(close=close).count(),
    )
    size = close_chunk_size()
    for at in range(0, len(missing), size):
        statements_close_chunk_task.delay(close.pk, missing[at : at + size])
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
        statement = statement_generate(
            organization=organization,
            period_start=close.period_start,
            period_end=close.period_end,
            actor=ACTOR,
            period_close=close,
        )
    except IntegrityError:  # the same task ran at the same time and won: its statement stands
        return Invoice.objects.filter(period_close=close, organization_id=organization_id).first()
    # None: a concurrent run issued it first (seen once the sequence row was locked)
    return statement or Invoice.objects.filter(period_close=close, organization_id=organization_id).first()


def statements_close_chunk(*, close_id: int, organization_ids: list) -> int:
    """The chunk task body: the statements of these organizations for the close, issued in one
    transaction (those that have theirs are skipped). A database that is busy (deadlock, lost
    connection) raises for the task to retry the chunk; any other failure falls back to one
    transaction per organization, so the others still get their statement and the failing one is
    logged and dispatched again by the next beat run. Answers the statements issued."""
    close = PeriodClose.objects.get(pk=close_id)
    organizations = list(Organization.objects.filter(pk__in=organization_ids).order_by("pk"))
    try:
        return len(
            statements_issue(
                organizations=organizations,
                period_start=close.period_start,
                period_end=close.period_end,
                actor=ACTOR,
                period_close=close,
            )
        )
    except OperationalError:
        raise
    except Exception:
        if len(organizations) == 1:
            raise
        logger.exception(
            "period close %s: chunk of %d failed, closing one by one", close_id, len(organizations)
        )
    issued = 0
    for organization in organizations:
        try:
            issued += (
                statement_close_organization(close_id=close_id, organization_id=organization.pk) is not None
            )
        except OperationalError:
            raise
        except Exception:
            logger.exception("period close %s: organization %s failed", close_id, organization.pk)
    return issued

"""Celery tasks of the usage app. They take ids, re-read the rows, call one service, and are
safe to run twice (see `billing.tasks`)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from billing.exceptions import StripeUnavailable
from billing.models import Organization
from config.leases import task_lease

from . import partitions, services


@shared_task(name="usage.reservations_expire_task")
def reservations_expire_task() -> int:
    """Beat: give back the credits and quota of reservations past their time."""
    return services.usage_reservations_expire()


@shared_task(
    bind=True,
    name="usage.meter_sync_task",
    autoretry_for=(StripeUnavailable,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def meter_sync_task(self, organization_id: str) -> dict:
    """One copy per organization at a time (see `config.leases`): a redelivered copy, or a
    second sync asked for while one runs, sends nothing and comes back later."""
    organization = Organization.objects.get(pk=organization_id)
    with task_lease(f"meter_sync:{organization_id}") as mine:
        if not mine:
            if self.request.is_eager:
                return {"queued": 0, "sent": 0, "duplicates": 0, "failed": 0, "busy": True}
            raise self.retry(countdown=settings.TASK_LEASE_RETRY_SECONDS, max_retries=None)
        result = services.usage_meter_sync(organization=organization)
    return {
        "queued": result.queued,
        "sent": result.sent,
        "duplicates": result.duplicates,
        "failed": result.failed,
        "expired": result.expired,
    }


@shared_task(name="usage.meter_sync_all_task")
def meter_sync_all_task() -> int:
    """Beat: one sync task per organization with a metered subscription."""
    organizations = services.organizations_metered()
    for organization in organizations:
        meter_sync_task.delay(str(organization.pk))
    return len(organizations)


@shared_task(name="usage.partitions_ensure_task")
def partitions_ensure_task() -> list[str]:
    """Beat: the monthly partitions of the events table, created ahead."""
    return partitions.partitions_ensure()

"""The Celery task behind the back office's long actions: it re-reads the job, runs it with
progress, and stores the result. A job delivered twice runs once (`backoffice_job_start`)."""

from __future__ import annotations

import logging

from celery import shared_task

from billing.models import BackofficeJob
from billing.services import (
    backoffice_job_finish,
    backoffice_job_progress,
    backoffice_job_start,
    stripe_catalog_sync,
)
from credits.services import reconcile_run
from usage.services import organizations_metered, usage_meter_sync


def _catalogue_sync(job: BackofficeJob) -> dict:
    backoffice_job_progress(job_id=job.pk, done=0, total=1)
    result = stripe_catalog_sync()
    backoffice_job_progress(job_id=job.pk, done=1, total=1)
    return {"products_created": result.products_created, "prices_created": result.prices_created}


def _meter_sync(job: BackofficeJob) -> dict:
    organizations = organizations_metered()
    totals = {"organizations": len(organizations), "sent": 0, "duplicates": 0, "failed": 0}
    backoffice_job_progress(job_id=job.pk, done=0, total=len(organizations))
    for done, organization in enumerate(organizations, start=1):
        result = usage_meter_sync(organization=organization)
        totals["sent"] += result.sent
        totals["duplicates"] += result.duplicates
        totals["failed"] += result.failed
        backoffice_job_progress(job_id=job.pk, done=done, total=len(organizations))
    return totals


def _reconcile(job: BackofficeJob) -> dict:
    run = reconcile_run(
        trigger="staff",
        requested_by=job.requested_by,
        progress=lambda done, total: backoffice_job_progress(job_id=job.pk, done=done, total=total),
    )
    return {"reconcile_run": run.pk, "status": run.status, "drifts": run.drift_count, "summary": run.summary}


logger = logging.getLogger(__name__)

RUNNERS = {
    BackofficeJob.Kind.CATALOGUE_SYNC: _catalogue_sync,
    BackofficeJob.Kind.METER_SYNC: _meter_sync,
    BackofficeJob.Kind.RECONCILE: _reconcile,
}


@shared_task(name="invoices.backoffice_job_task")
def backoffice_job_task(job_id: int) -> str | None:
    job = backoffice_job_start(job_id=job_id)
    if job is None:
        return None
    try:
        result = RUNNERS[job.kind](job)
    except Exception as exc:  # the job page shows the failure; staff run it again
        logger.exception("back-office job %s (%s) failed", job_id, job.kind)
        backoffice_job_finish(job_id=job_id, error=f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
        return None
    backoffice_job_finish(job_id=job_id, result=result)
    return job.kind

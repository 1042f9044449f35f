"""Celery tasks of the invoices app. They take ids, re-read the rows (or Stripe), call one
service, and are safe to run twice. Services import tasks by name; tasks reach the services
through the package (see `billing.tasks`)."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from billing.exceptions import StripeUnavailable

from . import services


@shared_task(
    name="invoices.stripe_invoice_sync_task",
    autoretry_for=(StripeUnavailable,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def stripe_invoice_sync_task(invoice_id: str) -> str | None:
    """Read a Stripe invoice with every line and store it (after a webhook whose object did not
    carry all its lines)."""
    result = services.stripe_invoice_sync(invoice_id=invoice_id)
    return result.invoice.status if result.invoice is not None else None


@shared_task(name="invoices.invoice_send_task", bind=True, max_retries=5, default_retry_delay=60)
def invoice_send_task(self, send_id: str) -> bool:
    sent = services.invoice_send_deliver(send_id=send_id)
    if not sent and services.invoice_send_pending(send_id=send_id):
        raise self.retry()
    return sent


@shared_task(name="invoices.invoice_sends_dispatch_due_task")
def invoice_sends_dispatch_due_task() -> int:
    """Beat: e-mail the logged sends whose task was lost."""
    return services.invoice_sends_dispatch_due()


@shared_task(name="invoices.period_close_task")
def period_close_task() -> dict:
    """Beat (hourly): close last month for every organization, one task per chunk of them."""
    close = services.period_close_run()
    done, total = services.period_close_progress(close=close)
    return {"close": close.pk, "done": done, "total": total, "finished": close.finished_at is not None}


@shared_task(
    name="invoices.statement_close_task",
    ignore_result=True,  # progress is the statements themselves; 10,000 results in Redis help nobody
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def statement_close_task(close_id: int, organization_id: str) -> str | None:
    statement = services.statement_close_organization(close_id=close_id, organization_id=organization_id)
    return statement.number if statement is not None else None


@shared_task(
    name="invoices.statements_close_chunk_task",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def statements_close_chunk_task(close_id: int, organization_ids: list[str]) -> int:
    """A chunk of a period close: its organizations' statements, set-based, safe to run twice."""
    return services.statements_close_chunk(close_id=close_id, organization_ids=organization_ids)


from .backoffice.tasks import backoffice_job_task  # noqa: E402,F401  (registers the back-office task)

"""Celery tasks of the credits app. They take ids, re-read the rows, call one service, and
are safe to run twice (`CELERY_TASK_ACKS_LATE`: a task whose worker died runs again).
Services import tasks by name; tasks reach services through the package (see `billing.tasks`)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from billing.exceptions import StripeUnavailable
from config.leases import task_lease

from . import notifications, services

logger = logging.getLogger(__name__)


@shared_task(name="credits.credit_grants_expire_task")
def credit_grants_expire_task() -> int:
    """Beat: expire the grants whose time has come on accounts no mutation touched since."""
    return services.credit_grants_expire()


@shared_task(name="credits.low_balance_alerts_task")
def low_balance_alerts_task() -> int:
    """Beat: alert accounts below their threshold that no consumption alerted (a threshold just
    raised, an expiry, a lost enqueue)."""
    return notifications.low_balance_notices_due()


@shared_task(name="credits.low_balance_alert_task")
def low_balance_alert_task(account_id: int) -> bool:
    return notifications.low_balance_notice_queue(account_id=account_id)


@shared_task(
    bind=True,
    name="credits.auto_refill_task",
    autoretry_for=(StripeUnavailable,),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=8,
)
def auto_refill_task(self, purchase_id: str) -> str | None:
    """Charge an auto-refill. A copy redelivered while the first still runs (the visibility
    timeout passed during a slow Stripe call) calls nothing: it comes back later, when the first
    copy has settled the purchase (and then does nothing) or died (and then finishes it)."""
    with task_lease(f"auto_refill:{purchase_id}") as mine:
        if not mine:
            logger.info("auto-refill %s: another copy is running; this one does nothing now", purchase_id)
            if self.request.is_eager:
                return None
            raise self.retry(countdown=settings.TASK_LEASE_RETRY_SECONDS, max_retries=None)
        purchase = services.auto_refill_run(purchase_id=purchase_id)
    return purchase.status if purchase is not None else None


@shared_task(name="credits.auto_refill_sweep_task")
def auto_refill_sweep_task() -> int:
    """Beat, every 2 minutes: auto-refills whose task was lost (committed, never enqueued) are
    enqueued again (`auto_refills_stale_dispatch`)."""
    return len(services.auto_refills_stale_dispatch())


@shared_task(name="credits.auto_refill_notice_task")
def auto_refill_notice_task(purchase_id: str, notice: str) -> bool:
    return notifications.auto_refill_notice_queue(purchase_id=purchase_id, notice=notice)


@shared_task(
    name="credits.subscription_credits_allocate_task",
    autoretry_for=(StripeUnavailable,),
    retry_backoff=True,
    max_retries=8,
)
def subscription_credits_allocate_task(invoice_id: str) -> bool:
    """After `invoice.paid`: the plan's included credits for the period the invoice paid for."""
    return services.subscription_credits_for_invoice(invoice_id=invoice_id)


@shared_task(name="credits.subscription_credits_catch_up_task")
def subscription_credits_catch_up_task() -> int:
    """Beat: grant the included credits of paid periods whose `invoice.paid` webhook never came."""
    return services.subscription_credits_catch_up()


@shared_task(name="credits.reconcile_daily_task")
def reconcile_daily_task() -> int:
    """Beat, daily: first what lost webhooks would have done, from Stripe's state (`reconcile
    --repair`: subscription statuses, paid purchases, period credits), then the whole reconcile,
    stored as a `ReconcileRun`; drift e-mails staff."""
    return services.reconcile_run(trigger="beat", requested_by="beat", repair=True).pk


@shared_task(name="credits.unusual_consumption_alerts_task")
def unusual_consumption_alerts_task() -> int:
    """Beat, hourly: staff alerts for organizations consuming far above their own average."""
    return services.unusual_consumption_alerts()

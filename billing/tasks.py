"""Celery tasks of the billing app. They take ids, re-read rows, call one service, and are
safe to run twice.

Services enqueue tasks (`transaction.on_commit(lambda: x_task.delay(id))`) and import them by
name; tasks reach the services through the package (`services.x(...)`, looked up when the task
runs), which is what lets the two modules refer to each other. Every app follows this rule."""

from celery import shared_task

from . import services
from .exceptions import StripeUnavailable


@shared_task(bind=True, autoretry_for=(StripeUnavailable,), retry_backoff=True, max_retries=8)
def subscription_refresh_task(self, subscription_id: str) -> str:
    """Re-read a subscription from Stripe and re-derive its organization's plan and status."""
    return services.organization_for_subscription_refresh(subscription_id=subscription_id)


@shared_task(bind=True, autoretry_for=(StripeUnavailable,), retry_backoff=True, max_retries=8)
def subscription_metered_items_sync_task(self, organization_id: str) -> int:
    """Give the organization's subscription the metered items of its plan (after Checkout or a
    plan change made on Stripe's pages). Answers how many items changed."""
    from .models import Organization

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return 0
    return len(services.subscription_metered_items_sync(organization=organization))


@shared_task(bind=True, autoretry_for=(StripeUnavailable,), retry_backoff=True, max_retries=8)
def payment_method_checkout_complete_task(self, organization_id: str, session_id: str) -> str | None:
    """Save the card of a completed Checkout session in setup mode (the webhook's path; the page
    the customer returns to does the same at once)."""
    from .models import Organization

    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return None
    pm = services.payment_method_checkout_complete(organization=organization, session_id=session_id)
    return pm.id if pm is not None else None


@shared_task(bind=True, max_retries=5, default_retry_delay=60)
def billing_notice_send_task(self, notice_id: int) -> bool:
    try:
        return services.billing_notice_send(notice_id=notice_id)
    except OSError as exc:  # SMTP trouble: try again later
        raise self.retry(exc=exc) from exc


@shared_task(name="billing.billing_notices_dispatch_due_task")
def billing_notices_dispatch_due_task() -> int:
    """Beat: send the notices whose after-commit task was lost."""
    return services.billing_notices_dispatch_due()


@shared_task(name="billing.task_outbox_dispatch_task")
def task_outbox_dispatch_task() -> int:
    """Beat: send again the tasks enqueued while the broker was away (config/task_outbox.py)."""
    from config.task_outbox import task_outbox_dispatch

    return task_outbox_dispatch()


@shared_task
def stripe_catalog_sync_task() -> dict:
    result = services.stripe_catalog_sync()
    return {"products_created": result.products_created, "prices_created": result.prices_created}

"""Celery tasks of the billing app. They take ids, re-read rows, call one service, and are
safe to run twice."""

from celery import shared_task

from .exceptions import StripeUnavailable


@shared_task(bind=True, autoretry_for=(StripeUnavailable,), retry_backoff=True, max_retries=8)
def subscription_refresh_task(self, subscription_id: str) -> str:
    """Re-read a subscription from Stripe and re-derive its organization's plan and status."""
    from .services import organization_for_subscription_refresh

    return organization_for_subscription_refresh(subscription_id=subscription_id)


@shared_task(bind=True, max_retries=5, default_retry_delay=60)
def billing_notice_send_task(self, notice_id: int) -> bool:
    from .services import billing_notice_send

    try:
        return billing_notice_send(notice_id=notice_id)
    except OSError as exc:  # SMTP trouble: try again later
        raise self.retry(exc=exc) from exc


@shared_task
def stripe_catalog_sync_task() -> dict:
    from .services import stripe_catalog_sync

    result = stripe_catalog_sync()
    return {"products_created": result.products_created, "prices_created": result.prices_created}

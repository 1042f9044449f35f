"""Drift between the credit purchases recorded here and their PaymentIntents on Stripe."""

from __future__ import annotations

import logging

from billing.services import (
    billing_stripe_state_restore,
    checkout_session_payment_get,
    payment_intent_status_get,
)

from ..models import IN_FLIGHT_STATUSES, CreditPurchase, PurchaseStatus
from .purchases import credit_purchase_fulfil
from .subscription_credits import subscription_credits_catch_up

logger = logging.getLogger(__name__)
UNSETTLED = (*IN_FLIGHT_STATUSES, PurchaseStatus.REQUIRES_ACTION)


def credit_purchases_stripe_drift_list(*, organization_ids: list | None = None) -> list[str]:
    """Purchases whose state here disagrees with their PaymentIntent on Stripe: paid there but not
    granted here (a lost webhook), or granted here but not paid there."""
    drifts = []
    purchases = CreditPurchase.objects.exclude(payment_intent_id=None).exclude(status=PurchaseStatus.REFUNDED)
    if organization_ids:
        purchases = purchases.filter(organization_id__in=organization_ids)
    for purchase in purchases.order_by("created_at"):
        status = payment_intent_status_get(payment_intent_id=purchase.payment_intent_id)
        granted = purchase.grant_id is not None
        if status == "succeeded" and not granted:
            drifts.append(
                f"purchase {purchase.pk}: {purchase.payment_intent_id} succeeded on Stripe, not granted"
            )
        elif status != "succeeded" and granted:
            drifts.append(f"purchase {purchase.pk}: granted, but {purchase.payment_intent_id} is {status!r}")
    for purchase, intent_id in _paid_checkouts_without_intent(organization_ids):
        drifts.append(
            f"purchase {purchase.pk}: Checkout {purchase.checkout_session_id} paid by {intent_id}, "
            "not granted"
        )
    return drifts


def _paid_checkouts_without_intent(organization_ids):
    """Checkout purchases whose session was paid on Stripe while no webhook told us (the
    PaymentIntent id only arrives with the webhook)."""
    purchases = CreditPurchase.objects.filter(
        payment_intent_id=None, grant=None, status__in=UNSETTLED
    ).exclude(checkout_session_id=None)
    if organization_ids:
        purchases = purchases.filter(organization_id__in=organization_ids)
    for purchase in purchases.order_by("created_at"):
        intent_id, payment_status = checkout_session_payment_get(session_id=purchase.checkout_session_id)
        if intent_id and payment_status == "paid":
            yield purchase, intent_id


def stripe_state_restore(*, organization_ids: list | None = None) -> list[str]:
    """Do what lost webhooks would have done, from Stripe's current state (`manage.py reconcile
    --repair`, and the hourly beat task): subscription statuses re-read, paid purchases granted
    (keyed on the PaymentIntent: never twice), the included credits of paid periods granted.
    Answers one line per repair."""
    repaired = billing_stripe_state_restore(organization_ids=organization_ids)
    purchases = CreditPurchase.objects.exclude(payment_intent_id=None).filter(grant=None)
    purchases = purchases.exclude(status__in=[PurchaseStatus.REFUNDED, PurchaseStatus.FAILED])
    if organization_ids:
        purchases = purchases.filter(organization_id__in=organization_ids)
    paid = [
        (purchase, purchase.payment_intent_id)
        for purchase in purchases.order_by("created_at")
        if payment_intent_status_get(payment_intent_id=purchase.payment_intent_id) == "succeeded"
    ]
    paid += list(_paid_checkouts_without_intent(organization_ids))
    for purchase, intent_id in paid:
        result = credit_purchase_fulfil(
            payment_intent_id=intent_id,
            purchase_id=purchase.pk,
            checkout_session_id=purchase.checkout_session_id,
        )
        if result.granted:
            repaired.append(
                f"purchase {purchase.pk}: {intent_id} paid on Stripe, {purchase.credits} credits granted"
            )
    periods = subscription_credits_catch_up()
    if periods:
        repaired.append(f"subscription credits: {periods} paid period(s) granted")
    for line in repaired:
        logger.warning("reconcile repaired: %s", line)
    return repaired

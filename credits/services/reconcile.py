"""Drift between the credit purchases recorded here and their PaymentIntents on Stripe."""

from __future__ import annotations

from billing.services import payment_intent_status_get

from ..models import CreditPurchase, PurchaseStatus


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
    return drifts

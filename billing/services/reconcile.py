"""Drift between the subscriptions recorded here and Stripe's."""

from __future__ import annotations

from .. import stripe_api
from ..models import Organization


def billing_stripe_drift_list(*, organization_ids: list | None = None) -> list[str]:
    """Organizations whose recorded subscription status differs from Stripe's (a lost webhook)."""
    drifts = []
    organizations = Organization.objects.exclude(stripe_subscription_id="")
    if organization_ids:
        organizations = organizations.filter(pk__in=organization_ids)
    for organization in organizations.order_by("pk"):
        try:
            data = stripe_api.subscription_retrieve(subscription_id=organization.stripe_subscription_id)
        except stripe_api.StripeRequestError as exc:
            drifts.append(
                f"organization {organization.pk}: subscription {organization.stripe_subscription_id} "
                f"not found on Stripe ({exc.message})"
            )
            continue
        if data["status"] != organization.subscription_status:
            drifts.append(
                f"organization {organization.pk}: subscription {data['id']} is {data['status']!r} on Stripe, "
                f"{organization.subscription_status!r} here"
            )
    return drifts

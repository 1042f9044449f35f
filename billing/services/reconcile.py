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


def billing_stripe_state_restore(*, organization_ids: list | None = None) -> list[str]:
    """What lost subscription webhooks would have done: every organization whose recorded status
    differs from Stripe's is re-read from Stripe (its mirror and plan re-derived), and a live
    subscription whose metered items are not its plan's (the items task lost between a webhook's
    commit and its enqueue) gets them. Answers one line per repair."""
    from .billing_state import organization_for_subscription_refresh
    from .subscriptions import metered_items_repair

    repaired = []
    organizations = Organization.objects.exclude(stripe_subscription_id="")
    if organization_ids:
        organizations = organizations.filter(pk__in=organization_ids)
    for organization in organizations.order_by("pk"):
        try:
            data = stripe_api.subscription_retrieve(subscription_id=organization.stripe_subscription_id)
        except stripe_api.StripeRequestError:
            continue  # reported by the drift check; nothing to copy from
        if data["status"] != organization.subscription_status:
            status = organization_for_subscription_refresh(subscription_id=data["id"])
            repaired.append(
                f"organization {organization.pk}: subscription {data['id']} "
                f"{organization.subscription_status!r} -> {status!r} (from Stripe)"
            )
        changes = metered_items_repair(organization=organization, subscription=data)
        if changes:
            repaired.append(
                f"organization {organization.pk}: subscription {data['id']} given its plan's metered "
                f"items ({len(changes)} change(s))"
            )
    return repaired


def checkout_session_payment_get(*, session_id: str) -> tuple[str | None, str]:
    """(PaymentIntent id, payment_status) of a Checkout session, as Stripe has it now."""
    session = stripe_api.checkout_session_retrieve(session_id=session_id)
    intent = session.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    return intent_id, session.get("payment_status") or ""

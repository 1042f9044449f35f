"""The organization's plan and status, derived from its subscriptions in the dj-stripe mirror."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from djstripe.models import Subscription

from .. import stripe_api, stripe_data
from ..exceptions import UnknownStripePrice
from ..models import BillingNotice, Organization
from ..selectors import (
    ENTITLED_STATUSES,
    LIVE_STATUSES,
    organization_subscriptions,
    plan_price_for_stripe_price,
    subscription_current_get,
)
from .backoffice import admin_url, staff_alert_queue
from .notices import billing_notice_queue


@dataclass(frozen=True)
class BillingChange:
    organization: Organization
    old_status: str
    new_status: str
    old_plan_id: int | None
    new_plan_id: int | None

    @property
    def changed(self) -> bool:
        return (self.old_status, self.old_plan_id) != (self.new_status, self.new_plan_id)


def subscription_sync(*, subscription_id: str):
    """Re-read a subscription from Stripe into the dj-stripe mirror: handlers never trust the
    event's copy, so events may arrive in any order."""
    data = stripe_api.subscription_retrieve(subscription_id=subscription_id)
    return Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)


def organization_billing_refresh(*, organization: Organization) -> BillingChange:
    """Derive the organization's plan and status from its subscriptions in the dj-stripe mirror.
    Idempotent: running it again with the same mirror changes nothing. A cancellation queues
    one e-mail per subscription, whichever path (webhook, re-read task, API) notices it first."""
    fields = ("subscription_status", "plan_id", "plan_interval", "stripe_subscription_id")
    with transaction.atomic():
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        before = {f: getattr(locked, f) for f in fields}
        state = _billing_state_from_mirror(locked)
        for name, value in state.items():
            setattr(locked, name, value)
        if state != before:
            locked.save(
                update_fields=[
                    "subscription_status",
                    "plan",
                    "plan_interval",
                    "stripe_subscription_id",
                    "updated_at",
                ]
            )
        if locked.trial_used_at is None:
            trial_start = _first_trial_start(locked)
            if trial_start is not None:
                Organization.objects.filter(pk=locked.pk).update(trial_used_at=trial_start)
                organization.trial_used_at = trial_start
        if state["subscription_status"] == "canceled" and state["stripe_subscription_id"]:
            billing_notice_queue(
                organization=locked,
                kind=BillingNotice.Kind.SUBSCRIPTION_CANCELED,
                key=f"subscription_canceled:{state['stripe_subscription_id']}",
                context={"subscription_id": state["stripe_subscription_id"]},
            )
            staff_alert_queue(
                kind=BillingNotice.Kind.STAFF_SUBSCRIPTION_CANCELED,
                key=f"subscription_canceled:{state['stripe_subscription_id']}",
                organization=locked,
                title=f"Subscription ended: {locked.name}",
                lines=[
                    f"Subscription {state['stripe_subscription_id']} is canceled; "
                    "the organization is on Free."
                ],
                link=admin_url(f"billing/organizationpage/{locked.pk}/overview/"),
            )
    for name, value in state.items():
        setattr(organization, name, value)
    organization._state.fields_cache.pop("plan", None)
    return BillingChange(
        organization,
        before["subscription_status"],
        state["subscription_status"],
        before["plan_id"],
        state["plan_id"],
    )


def _first_trial_start(organization: Organization):
    """When the organization's first trial started, from any of its subscriptions (one made
    here, through Checkout or in the portal), else None."""
    starts = [
        sub.stripe_data["trial_start"]
        for sub in organization_subscriptions(organization=organization)
        if sub.stripe_data.get("trial_start")
    ]
    return stripe_data.timestamp(min(starts)) if starts else None


def _billing_state_from_mirror(organization: Organization) -> dict:
    subscription = subscription_current_get(organization=organization)
    if subscription is None:
        return {"subscription_status": "", "plan_id": None, "plan_interval": "", "stripe_subscription_id": ""}
    data = subscription.stripe_data
    status = data.get("status", "")
    price_id = stripe_data.subscription_price_id(data)
    plan_price = plan_price_for_stripe_price(price_id=price_id) if price_id else None
    if plan_price is None and status in LIVE_STATUSES:
        # Raising makes the webhook fail, so Stripe redelivers it once staff have mapped the
        # price to a plan: an unknown price must not silently mean "free".
        raise UnknownStripePrice(
            f"Subscription {subscription.id} is on price {price_id}, which maps to no plan.",
            extra={"price": price_id, "subscription": subscription.id},
        )
    entitled = status in ENTITLED_STATUSES and plan_price is not None
    return {
        "subscription_status": status,
        "plan_id": plan_price.plan_id if entitled else None,
        "plan_interval": plan_price.interval if entitled else "",
        "stripe_subscription_id": subscription.id,
    }


def organization_for_subscription_refresh(*, subscription_id: str) -> str:
    """Re-read the subscription from Stripe, then re-derive its organization's state.
    Returns the organization's new status (or "" when the customer belongs to no organization)."""
    subscription = subscription_sync(subscription_id=subscription_id)
    organization = subscription.customer.subscriber if subscription.customer_id else None
    if organization is None:
        return ""
    return organization_billing_refresh(organization=organization).new_status

"""Subscriptions: create, change with proration, cancel, resume."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from djstripe.models import Subscription

from config.exceptions import NotFound, ValidationFailed

from .. import stripe_api, stripe_data
from ..exceptions import SubscriptionExists
from ..models import Organization, PlanPrice
from ..selectors import (
    organization_customer_get,
    organization_subscriptions_count,
    organization_trial_days,
    plan_get_by_code,
    plan_metered_price_ids,
    plan_price_for_stripe_price,
    plan_price_get,
    subscription_live_get,
)
from .billing_state import organization_billing_refresh
from .organizations import organization_customer_ensure
from .payment_methods import payment_method_attach


def plan_price_for_subscription(plan_code: str, interval: str) -> PlanPrice:
    """The price a new subscription to `plan_code` pays, or a 400 naming what is wrong."""
    plan = plan_get_by_code(code=plan_code)
    if plan is None:
        raise ValidationFailed(fields={"plan": [f"Unknown plan {plan_code!r}."]})
    if plan.is_free:
        raise ValidationFailed(
            fields={"plan": ["The free plan needs no subscription; cancel the current one to return to it."]}
        )
    price = plan_price_get(plan=plan, interval=interval)
    if price is None or not price.stripe_price_id:
        raise ValidationFailed(fields={"interval": [f"Plan {plan_code!r} has no {interval!r} price."]})
    return price


def subscription_create(
    *,
    organization: Organization,
    plan: str,
    interval: str,
    payment_method: str | None = None,
    trial_days: int | None = None,
):
    """Subscribe the organization to a paid plan. 409 if it has a live subscription, 400 for an
    unknown plan, 402 when the first payment is declined (Stripe then makes no subscription;
    a card given here stays saved, as it does on Stripe's own pages). The trial comes from the
    plan, once per organization (`organization_trial_days`); `trial_days` may only shorten it."""
    price = plan_price_for_subscription(plan, interval)
    if subscription_live_get(organization=organization) is not None:
        raise SubscriptionExists()
    customer = organization_customer_ensure(organization=organization)
    if payment_method:
        # A test token such as `pm_card_visa` becomes a new PaymentMethod when attached: use its id.
        payment_method = payment_method_attach(
            organization=organization, payment_method_id=payment_method, set_default=True
        ).id
        customer = organization_customer_get(organization=organization)
    # The trial is the plan's, once per organization; a client may ask for a shorter one, never
    # a longer one.
    trial = organization_trial_days(organization=organization, plan=price.plan)
    if trial_days is not None:
        trial = min(trial, trial_days)
    has_card = bool(stripe_data.default_payment_method_id(customer.stripe_data))
    if not has_card and not trial:
        raise ValidationFailed(fields={"payment_method": ["A card is needed for a plan without a trial."]})
    generation = organization_subscriptions_count(organization=organization)
    # Same organization, generation and parameters: the same key, so two concurrent requests
    # (or a retried one) make one subscription, never two.
    key = (
        f"subscription:{organization.id}:{generation}:{price.stripe_price_id}:{payment_method or '-'}:{trial}"
    )
    # The subscription pays with the customer's default card (set above when one is given), so
    # replacing the default card later is what the next renewal and Stripe's retries use.
    data = stripe_api.subscription_create(
        customer_id=customer.id,
        price_id=price.stripe_price_id,
        metered_price_ids=plan_metered_price_ids(plan=price.plan, interval=price.interval),
        trial_days=trial or None,
        metadata={"organization_id": str(organization.id), "plan_code": price.plan.code},
        idempotency_key=key,
    )
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def _require_live_subscription(organization: Organization):
    subscription = subscription_live_get(organization=organization)
    if subscription is None:
        raise NotFound("This organization has no subscription.")
    return subscription


def subscription_change(*, organization: Organization, plan: str | None = None, interval: str | None = None):
    """Move the subscription to another plan or interval, prorated."""
    current = _require_live_subscription(organization)
    data = current.stripe_data
    item = next(iter(stripe_data.subscription_items(data)), None)
    price_id = stripe_data.subscription_price_id(data)
    price_now = plan_price_for_stripe_price(price_id=price_id) if price_id else None
    plan_code = plan or (price_now.plan.code if price_now else None)
    new_interval = interval or (price_now.interval if price_now else None)
    if not plan_code or not new_interval:
        raise ValidationFailed(fields={"plan": ["Give a plan or an interval."]})
    price = plan_price_for_subscription(plan_code, new_interval)
    if price_now is not None and price_now.pk == price.pk:
        return current
    updated = stripe_api.subscription_change_price(
        subscription_id=current.id,
        item_id=item["id"],
        price_id=price.stripe_price_id,
        idempotency_key=f"subscription:{current.id}:change:{item['id']}:{price.stripe_price_id}",
    )
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(updated, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def subscription_cancel(*, organization: Organization, immediately: bool):
    current = _require_live_subscription(organization)
    if immediately:
        data = stripe_api.subscription_cancel(subscription_id=current.id)
    else:
        data = stripe_api.subscription_set_cancel_at_period_end(subscription_id=current.id, cancel=True)
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def subscription_resume(*, organization: Organization):
    """Undo a cancellation at period end (before the period has ended)."""
    current = _require_live_subscription(organization)
    if not current.stripe_data.get("cancel_at_period_end"):
        return current
    data = stripe_api.subscription_set_cancel_at_period_end(subscription_id=current.id, cancel=False)
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription

"""Stripe-hosted pages: Checkout sessions and Billing Portal sessions."""

from __future__ import annotations

from dataclasses import dataclass

from .. import stripe_api
from ..exceptions import SubscriptionExists
from ..models import Organization
from ..selectors import organization_trial_days, plan_metered_price_ids, subscription_live_get
from .organizations import organization_customer_ensure
from .subscriptions import plan_price_for_subscription


@dataclass(frozen=True)
class HostedSession:
    id: str
    url: str


def checkout_session_create(
    *,
    organization: Organization,
    mode: str,
    line_items: list[dict],
    success_url: str,
    cancel_url: str,
    metadata: dict,
    idempotency_key: str | None,
    subscription_data: dict | None = None,
    payment_intent_data: dict | None = None,
) -> HostedSession:
    """A Stripe Checkout session for the organization's customer (any mode)."""
    customer = organization_customer_ensure(organization=organization)
    params: dict = {
        "mode": mode,
        "customer": customer.id,
        "line_items": line_items,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": str(organization.id),
        "metadata": {"organization_id": str(organization.id), **metadata},
    }
    if subscription_data:
        params["subscription_data"] = subscription_data
    if payment_intent_data:
        params["payment_intent_data"] = payment_intent_data
    session = stripe_api.checkout_session_create(idempotency_key=idempotency_key, **params)
    return HostedSession(id=session["id"], url=session["url"])


def subscription_checkout_session_create(
    *, organization: Organization, plan: str, interval: str, success_url: str, cancel_url: str
) -> HostedSession:
    price = plan_price_for_subscription(plan, interval)
    if subscription_live_get(organization=organization) is not None:
        raise SubscriptionExists()
    subscription_data: dict = {
        "metadata": {"organization_id": str(organization.id), "plan_code": price.plan.code}
    }
    trial = organization_trial_days(organization=organization, plan=price.plan)
    if trial:
        subscription_data["trial_period_days"] = trial
    return checkout_session_create(
        organization=organization,
        mode="subscription",
        # The plan's price first (the item the plan is read from), then its metered prices
        # (billed in arrears: Stripe takes no quantity for them), as `subscription_create` does.
        line_items=[
            {"price": price.stripe_price_id, "quantity": 1},
            *({"price": p} for p in plan_metered_price_ids(plan=price.plan, interval=price.interval)),
        ],
        success_url=success_url,
        cancel_url=cancel_url,
        metadata={"kind": "subscription", "plan_code": price.plan.code},
        subscription_data=subscription_data,
        # Each click is a new session: there is no row of ours to derive a key from, and
        # stripe-python's own retries of this request reuse the key it generated.
        idempotency_key=None,
    )


def payment_method_checkout_session_create(
    *, organization: Organization, success_url: str, cancel_url: str
) -> HostedSession:
    """Stripe Checkout in setup mode: the customer enters a card on Stripe's page, which saves it
    to the organization's customer (`payment_method_checkout_complete` then records it). Use
    `{CHECKOUT_SESSION_ID}` in `success_url` to get the session back."""
    customer = organization_customer_ensure(organization=organization)
    metadata = {"organization_id": str(organization.id), "kind": "payment_method"}
    session = stripe_api.checkout_session_create(
        mode="setup",
        customer=customer.id,
        currency=customer.stripe_data.get("currency") or "usd",
        success_url=success_url,
        cancel_url=cancel_url,
        client_reference_id=str(organization.id),
        metadata=metadata,
        setup_intent_data={"metadata": metadata},
        idempotency_key=None,  # each click is a new session, as for subscriptions
    )
    return HostedSession(id=session["id"], url=session["url"])


def portal_session_create(*, organization: Organization, return_url: str) -> HostedSession:
    customer = organization_customer_ensure(organization=organization)
    session = stripe_api.portal_session_create(customer_id=customer.id, return_url=return_url)
    return HostedSession(id=session["id"], url=session["url"])

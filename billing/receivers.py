"""dj-stripe webhook handlers of the billing app.

They run inside dj-stripe's webhook transaction, after dj-stripe has stored the event and
(for subscription, customer and payment-method events) re-fetched the object from Stripe into
its mirror. So they are:
- idempotent: they derive the organization's state from the mirror, and e-mails are keyed on
  the Stripe object (a `BillingNotice` per subscription / invoice attempt), not on the event;
- order-independent: nothing depends on the event's own copy of the object; invoice and
  checkout events enqueue a re-read of the subscription from Stripe after commit;
- retried on failure: an exception rolls back dj-stripe's event row, the delivery answers
  an error, and Stripe's redelivery runs the handler again.
"""

from __future__ import annotations

import logging

from django.db import transaction
from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Charge, Customer, PaymentMethod, Subscription

from .models import BillingNotice, Organization
from .selectors import plan_price_for_stripe_price
from .services import (
    admin_url,
    billing_notice_queue,
    organization_billing_refresh,
    staff_alert_queue,
    subscription_metered_item_changes,
)
from .stripe_data import event_object, invoice_subscription_id, object_id
from .tasks import (
    payment_method_checkout_complete_task,
    subscription_metered_items_sync_task,
    subscription_refresh_task,
)

logger = logging.getLogger(__name__)


def _organization_for_customer(customer_id: str | None) -> Organization | None:
    if not customer_id:
        return None
    customer = Customer.objects.filter(id=customer_id).select_related("subscriber").first()
    return customer.subscriber if customer else None


def _enqueue_subscription_refresh(subscription_id: str | None) -> None:
    if subscription_id:
        transaction.on_commit(lambda: subscription_refresh_task.delay(subscription_id))


@djstripe_receiver(
    ["customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"]
)
def on_subscription_changed(sender, event, **kwargs):
    data = event_object(event)
    organization = _organization_for_customer(object_id(data.get("customer")))
    if organization is None:
        logger.warning(
            "subscription %s: customer %s belongs to no organization", data.get("id"), data.get("customer")
        )
        return
    organization_billing_refresh(organization=organization)
    subscription = Subscription.objects.filter(id=data.get("id")).first()
    current = subscription.stripe_data if subscription is not None else data
    if current.get("cancel_at_period_end") and current.get("status") != "canceled":
        staff_alert_queue(
            kind=BillingNotice.Kind.STAFF_SUBSCRIPTION_CANCELED,
            key=f"subscription_cancel_scheduled:{current.get('id')}:{current.get('canceled_at')}",
            organization=organization,
            title=f"Cancellation scheduled: {organization.name}",
            lines=[f"Subscription {current.get('id')} ends at the end of its period (cancel at period end)."],
            link=admin_url(f"billing/organizationpage/{organization.pk}/overview/"),
        )
    if event.type != "customer.subscription.deleted" and _metered_items_off(data):
        organization_id = str(organization.pk)
        transaction.on_commit(lambda: subscription_metered_items_sync_task.delay(organization_id))


def _metered_items_off(subscription: dict) -> bool:
    """The subscription's metered items differ from its plan's (made by Checkout, or a plan changed
    on Stripe's pages): the task fixes them after commit (it re-reads the subscription)."""
    if subscription.get("status") in ("canceled", "incomplete_expired"):
        return False
    price_id = object_id(((subscription.get("items") or {}).get("data") or [{}])[0].get("price"))
    price = plan_price_for_stripe_price(price_id=price_id) if price_id else None
    return price is not None and bool(
        subscription_metered_item_changes(subscription=subscription, price=price)
    )


@djstripe_receiver("customer.subscription.trial_will_end")
def on_trial_will_end(sender, event, **kwargs):
    data = event_object(event)
    organization = _organization_for_customer(object_id(data.get("customer")))
    if organization is None:
        return
    organization_billing_refresh(organization=organization)
    billing_notice_queue(
        organization=organization,
        kind=BillingNotice.Kind.TRIAL_ENDING,
        key=f"trial_ending:{data.get('id')}:{data.get('trial_end')}",
        context={
            "subscription_id": data.get("id"),
            "trial_end": data.get("trial_end"),
            "plan_name": organization.plan.name if organization.plan_id else "",
        },
    )


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender, event, **kwargs):
    _enqueue_subscription_refresh(invoice_subscription_id(event_object(event)))


@djstripe_receiver("invoice.payment_failed")
def on_invoice_payment_failed(sender, event, **kwargs):
    invoice = event_object(event)
    organization = _organization_for_customer(object_id(invoice.get("customer")))
    _enqueue_subscription_refresh(invoice_subscription_id(invoice))
    if organization is None:
        return
    billing_notice_queue(
        organization=organization,
        kind=BillingNotice.Kind.PAYMENT_FAILED,
        key=f"payment_failed:{invoice.get('id')}:{invoice.get('attempt_count') or 0}",
        context={
            "invoice_id": invoice.get("id"),
            "amount_due": invoice.get("amount_due"),
            "currency": invoice.get("currency"),
            "hosted_invoice_url": invoice.get("hosted_invoice_url"),
            "next_payment_attempt": invoice.get("next_payment_attempt"),
        },
    )
    staff_alert_queue(
        kind=BillingNotice.Kind.STAFF_PAYMENT_FAILED,
        key=f"payment_failed:{invoice.get('id')}",
        organization=organization,
        title=f"Payment failed: {organization.name}",
        lines=[
            f"Invoice {invoice.get('id')}: {invoice.get('amount_due')} "
            f"{str(invoice.get('currency')).upper()} (minor units) could not be collected.",
            "Stripe retries on its schedule; this alert is sent once per invoice.",
        ],
        link=admin_url(f"billing/organizationpage/{organization.pk}/overview/"),
    )


@djstripe_receiver("charge.dispute.created")
def on_dispute_created(sender, event, **kwargs):
    dispute = event_object(event)
    charge = Charge.objects.filter(id=object_id(dispute.get("charge"))).first()
    customer_id = object_id(charge.stripe_data.get("customer")) if charge is not None else None
    organization = _organization_for_customer(customer_id)
    staff_alert_queue(
        kind=BillingNotice.Kind.STAFF_DISPUTE,
        key=f"dispute:{dispute.get('id')}",
        organization=organization,
        title=f"Payment disputed{': ' + organization.name if organization else ''}",
        lines=[
            f"Dispute {dispute.get('id')} on charge {object_id(dispute.get('charge'))}: "
            f"{dispute.get('amount')} {str(dispute.get('currency')).upper()} (minor units), "
            f"reason {dispute.get('reason')!r}.",
            "Answer it on Stripe before its evidence due date.",
        ],
        link=admin_url(f"billing/organizationpage/{organization.pk}/overview/") if organization else "",
    )


@djstripe_receiver("checkout.session.completed")
def on_checkout_completed(sender, event, **kwargs):
    session = event_object(event)
    if session.get("mode") == "subscription":
        _enqueue_subscription_refresh(object_id(session.get("subscription")))
    if session.get("mode") == "setup":
        organization = _organization_for_customer(object_id(session.get("customer")))
        if organization is not None:
            session_id, org_id = session.get("id"), str(organization.pk)
            transaction.on_commit(lambda: payment_method_checkout_complete_task.delay(org_id, session_id))


@djstripe_receiver(["payment_method.attached", "payment_method.detached", "customer.updated"])
def on_customer_payment_methods_changed(sender, event, **kwargs):
    """dj-stripe re-fetched the payment method into its mirror; when the current object has no
    customer (detached), the mirror's customer link goes too. The event's copy is not trusted."""
    data = event_object(event)
    if data.get("object") != "payment_method":
        return
    pm = PaymentMethod.objects.filter(id=data.get("id")).first()
    if pm is not None and not pm.stripe_data.get("customer") and pm.customer_id is not None:
        PaymentMethod.objects.filter(pk=pm.pk).update(customer=None)

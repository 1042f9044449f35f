"""dj-stripe webhook handlers of the credits app (credits sit above billing, so the handlers
that turn Stripe events into ledger rows live here).

dj-stripe has already re-fetched the event's object from Stripe into its mirror when these run,
and they act on that current state, not on the event's copy: so they are order-independent
(a `payment_intent.payment_failed` arriving after the payment succeeded grants, it does not
fail the purchase) and idempotent (every grant is keyed on the PaymentIntent or the invoice).
They run in the webhook's transaction; an exception makes Stripe deliver again.
"""

from __future__ import annotations

import logging

from django.db import transaction
from djstripe import models as djstripe_models
from djstripe.event_handlers import djstripe_receiver

from billing.stripe_data import event_object, object_id

from . import services
from .exceptions import CreditPurchaseNotFound
from .models import CreditPurchase, PurchaseKind, PurchaseStatus
from .tasks import subscription_credits_allocate_task

logger = logging.getLogger(__name__)


def _mirror(model_name: str, stripe_id: str | None) -> dict:
    """The current object as dj-stripe just re-fetched it (falls back to nothing)."""
    if not stripe_id:
        return {}
    row = getattr(djstripe_models, model_name).objects.filter(id=stripe_id).first()
    return row.stripe_data if row is not None else {}


def _purchase_for(intent: dict) -> CreditPurchase | None:
    purchase_id = (intent.get("metadata") or {}).get("purchase_id")
    purchase = CreditPurchase.objects.filter(pk=purchase_id).first() if purchase_id else None
    return purchase or CreditPurchase.objects.filter(payment_intent_id=intent.get("id")).first()


@djstripe_receiver(
    [
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.canceled",
    ]
)
def on_payment_intent(sender, event, **kwargs):
    event_copy = event_object(event)
    intent = _mirror("PaymentIntent", event_copy.get("id")) or event_copy
    purchase = _purchase_for(intent)
    if purchase is None:
        return  # not a credit purchase
    status = intent.get("status")
    if status == "succeeded":
        services.credit_purchase_fulfil(payment_intent_id=intent["id"], purchase_id=purchase.pk)
    elif purchase.kind == PurchaseKind.CHECKOUT:
        return  # the customer may try another card on the Checkout page
    elif status == "requires_action":
        if purchase.kind == PurchaseKind.AUTO_REFILL:
            services.auto_refill_requires_action(purchase_id=purchase.pk, payment_intent_id=intent["id"])
    elif status in ("requires_payment_method", "canceled"):
        error = intent.get("last_payment_error") or {}
        code = error.get("decline_code") or error.get("code") or status
        if purchase.kind == PurchaseKind.AUTO_REFILL:
            services.auto_refill_payment_failed(
                purchase_id=purchase.pk, decline_code=code, message=error.get("message") or ""
            )
        elif purchase.status != PurchaseStatus.SUCCEEDED:
            services.credit_purchase_failed(
                purchase_id=purchase.pk,
                code=code,
                message=error.get("message") or "",
                payment_intent_id=intent["id"],
            )


@djstripe_receiver(["checkout.session.completed", "checkout.session.async_payment_succeeded"])
def on_checkout_paid(sender, event, **kwargs):
    event_copy = event_object(event)
    session = _mirror("Session", event_copy.get("id")) or event_copy
    metadata = session.get("metadata") or {}
    if session.get("mode") != "payment" or metadata.get("kind") != "credits":
        return
    if session.get("payment_status") != "paid":
        return  # async payment: `checkout.session.async_payment_succeeded` comes later
    try:
        services.credit_purchase_fulfil(
            payment_intent_id=object_id(session.get("payment_intent")),
            purchase_id=metadata.get("purchase_id"),
            checkout_session_id=session.get("id"),
        )
    except CreditPurchaseNotFound:
        logger.error(
            "checkout session %s names purchase %s, which does not exist",
            session.get("id"),
            metadata.get("purchase_id"),
        )


@djstripe_receiver("charge.refunded")
def on_charge_refunded(sender, event, **kwargs):
    event_copy = event_object(event)
    charge = _mirror("Charge", event_copy.get("id")) or event_copy
    intent_id = object_id(charge.get("payment_intent"))
    if intent_id and CreditPurchase.objects.filter(payment_intent_id=intent_id).exists():
        services.credit_purchase_reverse(
            payment_intent_id=intent_id,
            refunded_amount=charge.get("amount_refunded"),
            reason="Refund of the purchase",
        )


@djstripe_receiver("charge.dispute.created")
def on_dispute_created(sender, event, **kwargs):
    event_copy = event_object(event)
    dispute = _mirror("Dispute", event_copy.get("id")) or event_copy
    intent_id = object_id(dispute.get("payment_intent"))
    if not intent_id:
        intent_id = object_id(_mirror("Charge", object_id(dispute.get("charge"))).get("payment_intent"))
    if intent_id and CreditPurchase.objects.filter(payment_intent_id=intent_id).exists():
        services.credit_purchase_reverse(
            payment_intent_id=intent_id, refunded_amount=dispute.get("amount"), reason="Disputed payment"
        )


@djstripe_receiver("invoice.paid")
def on_invoice_paid(sender, event, **kwargs):
    """The plan's included credits for the paid period: re-read from Stripe by a task after commit."""
    invoice_id = (event_object(event)).get("id")
    if invoice_id:
        transaction.on_commit(lambda: subscription_credits_allocate_task.delay(invoice_id))


@djstripe_receiver(["customer.subscription.deleted", "customer.subscription.updated"])
def on_subscription_ended(sender, event, **kwargs):
    """A subscription canceled during its trial: the unspent trial credits are taken back."""
    subscription = _mirror("Subscription", event_object(event).get("id")) or event_object(event)
    if subscription.get("status") not in ("canceled", "incomplete_expired"):
        return
    customer = djstripe_models.Customer.objects.filter(id=object_id(subscription.get("customer"))).first()
    if customer is not None and customer.subscriber_id is not None:
        services.trial_credits_take_back(organization=customer.subscriber)

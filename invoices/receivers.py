"""dj-stripe webhook handlers of the invoices app: Stripe invoices kept whole.

dj-stripe has re-fetched the invoice into its mirror before these run; they store that current
object (never the event's copy) and never move an invoice back in its life, so repeated and
out-of-order deliveries leave the right status. When the object did not carry every line (Stripe
embeds 10), a task reads them all after commit. They run in the webhook's transaction: an
exception makes the delivery fail and Stripe delivers again.
"""

from __future__ import annotations

from djstripe import models as djstripe_models
from djstripe.event_handlers import djstripe_receiver

from billing.stripe_data import event_object

from . import services

INVOICE_EVENTS = [
    "invoice.created",
    "invoice.updated",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.sent",
]


@djstripe_receiver(INVOICE_EVENTS)
def on_invoice_changed(sender, event, **kwargs):
    invoice_id = event_object(event).get("id")
    if not invoice_id:
        return
    mirror = djstripe_models.Invoice.objects.filter(id=invoice_id).first()
    if mirror is None:
        # dj-stripe found no such invoice any more (deleted since): nothing to store.
        return
    services.stripe_invoice_sync_from_mirror(data=mirror.stripe_data)


@djstripe_receiver("invoice.deleted")
def on_invoice_deleted(sender, event, **kwargs):
    invoice_id = event_object(event).get("id")
    if invoice_id:
        services.stripe_invoice_forget_draft(invoice_id=invoice_id)

"""Payment links: a one-off amount billed through a Stripe-hosted invoice (`send_invoice`,
due in `days_until_due` days), finalized at once so its hosted page can take a card. The paid
status comes back by the `invoice.paid` webhook like any Stripe invoice's."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from billing.models import Organization
from billing.services import organization_customer_ensure, stripe_invoice_create_one_off
from config.exceptions import IdempotencyConflict
from credits.services import request_fingerprint

from ..models import Invoice, PaymentLink
from .stripe_sync import stripe_invoice_save


@dataclass(frozen=True)
class PaymentLinkResult:
    link: PaymentLink
    invoice: Invoice
    created: bool


def payment_link_create(
    *,
    organization: Organization,
    description: str,
    amount: int,
    currency: str,
    days_until_due: int,
    idempotency_key: str | None = None,
    actor: str = "",
) -> PaymentLinkResult:
    """Save the link, then make, fill and finalize its Stripe invoice (each call keyed on the
    link's id, so a retry after a failure half-way makes nothing twice). The same
    `idempotency_key` with the same request answers the same link; with another, 409."""
    currency = currency.lower()
    fingerprint = request_fingerprint(
        "payment_link", description=description, amount=amount, currency=currency, days=days_until_due
    )
    link, created = _link_get_or_create(
        organization=organization,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        fields={
            "description": description,
            "amount": amount,
            "currency": currency,
            "days_until_due": days_until_due,
            "created_by": actor,
        },
    )
    if link.invoice_id is not None:
        return PaymentLinkResult(link=link, invoice=link.invoice, created=created)
    customer = organization_customer_ensure(organization=organization)
    finalized = stripe_invoice_create_one_off(
        customer_id=customer.id,
        description=link.description,
        amount=link.amount,
        currency=link.currency,
        days_until_due=link.days_until_due,
        key=link.stripe_key,
        metadata={"payment_link_id": str(link.pk), "organization_id": str(organization.pk)},
    )
    invoice = stripe_invoice_save(data=finalized).invoice
    PaymentLink.objects.filter(pk=link.pk, invoice__isnull=True).update(invoice=invoice)
    link.invoice = invoice
    return PaymentLinkResult(link=link, invoice=invoice, created=created)


def _link_get_or_create(*, organization, idempotency_key, fingerprint, fields) -> tuple[PaymentLink, bool]:
    if idempotency_key:
        existing = (
            PaymentLink.objects.select_related("invoice")
            .filter(organization=organization, idempotency_key=idempotency_key)
            .first()
        )
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise IdempotencyConflict()
            return existing, False
    try:
        with transaction.atomic():
            return (
                PaymentLink.objects.create(
                    organization=organization,
                    idempotency_key=idempotency_key or None,
                    request_fingerprint=fingerprint,
                    **fields,
                ),
                True,
            )
    except IntegrityError:  # the same key, a moment earlier, from a concurrent request
        return _link_get_or_create(
            organization=organization, idempotency_key=idempotency_key, fingerprint=fingerprint, fields=fields
        )

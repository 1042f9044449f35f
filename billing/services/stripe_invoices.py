"""Stripe invoice calls for the apps above billing (invoices): they reach Stripe only through
these services, never `billing.stripe_api` itself. Each answers Stripe's object as a plain dict."""

from __future__ import annotations

from .. import stripe_api


def stripe_invoice_retrieve_whole(*, invoice_id: str) -> dict:
    """The invoice with every line (paged past the 10 Stripe embeds)."""
    return stripe_api.invoice_retrieve_whole(invoice_id=invoice_id)


def stripe_invoices_for_customer(*, customer_id: str, created_gte: int | None = None) -> list[dict]:
    return stripe_api.invoices_list_for_customer(customer_id=customer_id, created_gte=created_gte)


def stripe_invoice_create_one_off(
    *,
    customer_id: str,
    description: str,
    amount: int,
    currency: str,
    days_until_due: int,
    key: str,
    metadata: dict,
) -> dict:
    """A finalized `send_invoice` invoice of one item, payable on its hosted page. Every call has
    an idempotency key derived from `key` (our row), so a retry makes nothing twice."""
    draft = stripe_api.invoice_create(
        customer_id=customer_id,
        idempotency_key=f"{key}:invoice",
        description=description,
        currency=currency,
        collection_method="send_invoice",
        days_until_due=days_until_due,
        metadata=metadata,
    )
    stripe_api.invoice_item_create(
        customer_id=customer_id,
        invoice_id=draft["id"],
        amount=amount,
        currency=currency,
        description=description,
        idempotency_key=f"{key}:item",
        metadata=metadata,
    )
    return stripe_api.invoice_finalize(invoice_id=draft["id"], idempotency_key=f"{key}:finalize")


def stripe_invoice_void(*, invoice_id: str) -> dict:
    return stripe_api.invoice_void(invoice_id=invoice_id)


def stripe_invoice_mark_uncollectible(*, invoice_id: str) -> dict:
    return stripe_api.invoice_mark_uncollectible(invoice_id=invoice_id)

"""Fixtures of the invoices tests: Stripe invoices made directly in the in-process emulator for
an organization's customer, and what the webhooks make of them."""

from __future__ import annotations

import pytest
import stripe

from billing.selectors import organization_customer_get
from tests.stripe_helpers import STRIPE_KEY


def customer_id(organization) -> str:
    return organization_customer_get(organization=organization).id


def make_stripe_invoice(
    organization, amounts, *, finalize: bool = True, collection_method: str = "charge_automatically"
):
    """A Stripe invoice of the organization's customer with one item per amount."""
    cid = customer_id(organization)
    params = {"collection_method": collection_method}
    if collection_method == "send_invoice":
        params["days_until_due"] = 30
    invoice = stripe.Invoice.create(customer=cid, description="Services", **params, **STRIPE_KEY)
    for n, amount in enumerate(amounts, start=1):
        stripe.InvoiceItem.create(
            customer=cid,
            invoice=invoice.id,
            amount=amount,
            currency="usd",
            description=f"Item {n}",
            **STRIPE_KEY,
        )
    if finalize:
        stripe.Invoice.finalize_invoice(invoice.id, **STRIPE_KEY)
    return stripe.Invoice.retrieve(invoice.id, **STRIPE_KEY)


@pytest.fixture
def stripe_invoice():
    return make_stripe_invoice


@pytest.fixture
def credit_catalogue(db):
    """The packs and prices these tests use (the migrations seed them, but a test that flushes the
    database, such as a concurrency test, removes them for the tests after it)."""
    from decimal import Decimal

    from credits.models import CreditPack, CreditPrice

    for code, credits, amount in (("credits-1k", 1000, 1000), ("credits-5k", 5000, 4500)):
        CreditPack.objects.update_or_create(
            code=code, defaults={"name": f"{credits:,} credits", "credits": credits, "amount": amount}
        )
    for name, per_unit in (
        ("SMS_SENT", "1"),
        ("CALL_DURATION_SECONDS", "0.05"),
        ("AI_MESSAGE_GENERATED", "5"),
    ):
        CreditPrice.objects.update_or_create(
            event_name=name, defaults={"credits_per_unit": Decimal(per_unit), "category": "test"}
        )

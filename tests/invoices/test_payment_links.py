"""Payment links: a finalized Stripe-hosted invoice for the organization's customer, paid on the
emulator's hosted page with a test card; `invoice.paid` (delivered through dj-stripe's endpoint)
turns it paid."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest

from invoices.models import Invoice, PaymentLink

pytestmark = pytest.mark.django_db

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def links_path(org) -> str:
    return f"/api/v1/organizations/{org.id}/payment-links"


BODY = {"description": "Onboarding workshop", "amount": 45000, "currency": "USD", "days_until_due": 14}


def test_a_payment_link_is_paid_on_the_hosted_page_and_turns_paid_by_webhook(
    webhooks, billing_org, billing_client, stripe_emulator
):
    response = billing_client.post(links_path(billing_org), BODY, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    invoice = Invoice.objects.get(pk=body["invoice_id"])
    assert body["url"] == invoice.hosted_url and body["status"] == "open"
    assert (invoice.amount_due, invoice.currency, invoice.collection_method) == (45000, "usd", "send_invoice")
    assert invoice.lines.get().description == "Onboarding workshop" and invoice.due_date is not None
    webhooks.deliver()
    page = urlsplit(body["url"]).path
    status, _, html = stripe_emulator.handle("GET", page, {}, None)
    assert status == 200 and b"$450.00" in html
    status, _, _ = stripe_emulator.handle("POST", page + "/pay", FORM, urlencode({"card": "decline"}))
    assert status == 402
    webhooks.deliver()
    assert Invoice.objects.get(pk=invoice.pk).status == "open"
    status, _, _ = stripe_emulator.handle("POST", page + "/pay", FORM, urlencode({"card": "success"}))
    assert status == 303
    assert Invoice.objects.get(pk=invoice.pk).status == "open"  # nothing changes before the webhook
    webhooks.deliver()
    paid = Invoice.objects.get(pk=invoice.pk)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 45000, 0)


def test_the_same_key_answers_the_same_link_and_makes_one_stripe_invoice(
    billing_org, billing_client, stripe_emulator
):
    keyed = {**BODY, "idempotency_key": "workshop-1"}
    first = billing_client.post(links_path(billing_org), keyed, format="json")
    again = billing_client.post(links_path(billing_org), keyed, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert len(stripe_emulator.objects("invoice")) == 1 and PaymentLink.objects.count() == 1
    other = billing_client.post(links_path(billing_org), {**keyed, "amount": 1}, format="json")
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"


def test_a_stripe_failure_half_way_is_finished_by_the_retry(billing_org, billing_client, stripe_emulator):
    keyed = {**BODY, "idempotency_key": "retry-me"}
    stripe_emulator.faults.add(method="POST", path="/v1/invoices/*/finalize", status=500, times=1)
    failed = billing_client.post(links_path(billing_org), keyed, format="json")
    assert failed.status_code == 503 and failed.json()["error"] == "stripe_unavailable"
    retried = billing_client.post(links_path(billing_org), keyed, format="json")
    assert retried.status_code == 200 and retried.json()["status"] == "open"
    assert len(stripe_emulator.objects("invoice")) == 1 and len(stripe_emulator.objects("invoiceitem")) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 0),
        ("amount", 100_000_000),
        ("amount", "ten"),
        ("currency", "dollars"),
        ("days_until_due", -1),
        ("days_until_due", 400),
        ("description", ""),
    ],
)
def test_bad_input_is_a_400_and_makes_nothing(billing_org, billing_client, stripe_emulator, field, value):
    response = billing_client.post(links_path(billing_org), {**BODY, field: value}, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not PaymentLink.objects.exists() and not stripe_emulator.objects("invoice")

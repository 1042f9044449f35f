"""One-off invoices, invoice items and lines: draft, open, paid, void, uncollectible; hosted pages."""

from __future__ import annotations

import pytest
import stripe

from .conftest import KEY


def draft_with_items(customer, *amounts: int) -> stripe.Invoice:
    invoice = stripe.Invoice.create(api_key=KEY, customer=customer.id, description="Statement")
    for amount in amounts:
        stripe.InvoiceItem.create(
            api_key=KEY,
            customer=customer.id,
            invoice=invoice.id,
            amount=amount,
            currency="usd",
            description=f"Usage {amount}",
        )
    return stripe.Invoice.retrieve(invoice.id, api_key=KEY)


def test_draft_finalize_pay(emu, customer, client):
    draft = draft_with_items(customer, 1200, 800)
    assert (draft.status, draft.total, draft.amount_due, draft.number) == ("draft", 2000, 2000, None)
    assert draft.hosted_invoice_url is None
    finalized = client.v1.invoices.finalize_invoice(draft.id)
    assert finalized.status == "open" and finalized.number == f"{customer.invoice_prefix}-0001"
    assert finalized.hosted_invoice_url and finalized.invoice_pdf
    assert finalized.status_transitions.finalized_at is not None
    paid = stripe.Invoice.pay(draft.id, api_key=KEY)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 2000, 0)
    assert paid.status_transitions.paid_at is not None
    payments = stripe.InvoicePayment.list(api_key=KEY, invoice=paid.id).data
    assert payments[0].status == "paid" and payments[0].amount_paid == 2000
    pi = stripe.PaymentIntent.retrieve(payments[0].payment.payment_intent, api_key=KEY)
    assert (pi.status, pi.amount) == ("succeeded", 2000)
    assert stripe.Customer.retrieve(customer.id, api_key=KEY).next_invoice_sequence == 2
    types = emu.event_types()
    for expected in [
        "invoice.created",
        "invoiceitem.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]:
        assert expected in types
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Invoice.pay(draft.id, api_key=KEY)


def test_pending_items_are_included_only_when_asked(emu, customer):
    stripe.InvoiceItem.create(api_key=KEY, customer=customer.id, amount=500, currency="usd")
    excluded = stripe.Invoice.create(api_key=KEY, customer=customer.id)
    assert excluded.total == 0
    included = stripe.Invoice.create(
        api_key=KEY, customer=customer.id, pending_invoice_items_behavior="include"
    )
    assert included.total == 500
    assert stripe.InvoiceItem.list(api_key=KEY, invoice=included.id).data[0].invoice == included.id


def test_payment_failure_then_void(emu):
    cust = stripe.Customer.create(
        api_key=KEY,
        payment_method="pm_card_chargeCustomerFail",
        invoice_settings={"default_payment_method": "pm_card_chargeCustomerFail"},
    )
    invoice = draft_with_items(cust, 5000)
    stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    with pytest.raises(stripe.CardError) as caught:
        stripe.Invoice.pay(invoice.id, api_key=KEY)
    assert caught.value.error.decline_code == "generic_decline"
    failed = stripe.Invoice.retrieve(invoice.id, api_key=KEY)
    assert (failed.status, failed.attempt_count, failed.attempted) == ("open", 1, True)
    assert "invoice.payment_failed" in emu.event_types()
    voided = stripe.Invoice.void_invoice(invoice.id, api_key=KEY)
    assert voided.status == "void" and voided.status_transitions.voided_at is not None
    pi_id = stripe.InvoicePayment.list(api_key=KEY, invoice=invoice.id).data[0].payment.payment_intent
    assert stripe.PaymentIntent.retrieve(pi_id, api_key=KEY).status == "canceled"
    assert "invoice.voided" in emu.event_types()
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Invoice.void_invoice(invoice.id, api_key=KEY)
    with pytest.raises(stripe.InvalidRequestError):
        stripe.PaymentIntent.cancel(pi_id, api_key=KEY)


def test_uncollectible_and_paid_out_of_band(emu, customer):
    invoice = draft_with_items(customer, 700)
    stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    marked = stripe.Invoice.mark_uncollectible(invoice.id, api_key=KEY)
    assert marked.status == "uncollectible"
    assert "invoice.marked_uncollectible" in emu.event_types()
    paid = stripe.Invoice.pay(invoice.id, api_key=KEY, paid_out_of_band=True)
    assert paid.status == "paid"
    assert emu.objects("charge") == []


def test_send_invoice_collection(emu, customer):
    invoice = stripe.Invoice.create(
        api_key=KEY, customer=customer.id, collection_method="send_invoice", days_until_due=14
    )
    stripe.InvoiceItem.create(
        api_key=KEY, customer=customer.id, invoice=invoice.id, amount=1000, currency="usd"
    )
    finalized = stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    assert finalized.due_date == finalized.status_transitions.finalized_at + 14 * 86400
    sent = stripe.Invoice.send_invoice(invoice.id, api_key=KEY)
    assert sent.status == "open"
    assert emu.event_types()[-1] == "invoice.sent"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Invoice.create(api_key=KEY, customer=customer.id, collection_method="send_invoice")


def test_draft_edit_and_delete(emu, customer):
    invoice = draft_with_items(customer, 300)
    item = stripe.InvoiceItem.list(api_key=KEY, invoice=invoice.id).data[0]
    stripe.InvoiceItem.modify(item.id, api_key=KEY, amount=450)
    assert stripe.Invoice.retrieve(invoice.id, api_key=KEY).total == 450
    stripe.InvoiceItem.delete(item.id, api_key=KEY)
    assert stripe.Invoice.retrieve(invoice.id, api_key=KEY).total == 0
    updated = stripe.Invoice.modify(invoice.id, api_key=KEY, description="Changed", metadata={"k": "v"})
    assert updated.description == "Changed"
    assert stripe.Invoice.delete(invoice.id, api_key=KEY).deleted is True
    assert emu.event_types()[-1] == "invoice.deleted"


def test_zero_total_invoice_is_paid_at_finalization_and_credit_carries_over(emu, customer):
    credit = draft_with_items(customer, 1000, -1500)
    finalized = stripe.Invoice.finalize_invoice(credit.id, api_key=KEY)
    assert (finalized.status, finalized.amount_due, finalized.ending_balance) == ("paid", 0, -500)
    assert stripe.Customer.retrieve(customer.id, api_key=KEY).balance == -500
    next_invoice = draft_with_items(customer, 2000)
    finalized = stripe.Invoice.finalize_invoice(next_invoice.id, api_key=KEY)
    assert (finalized.starting_balance, finalized.amount_due, finalized.ending_balance) == (-500, 1500, 0)


def test_lines_paginate(emu, customer):
    invoice = draft_with_items(customer, *range(100, 1300, 100))
    assert invoice.lines.has_more is True and len(invoice.lines.data) == 10
    lines = list(stripe.Invoice.list_lines(invoice.id, api_key=KEY, limit=5).auto_paging_iter())
    assert [line.amount for line in lines] == list(range(100, 1300, 100))


def test_list_invoices_with_filters(emu, customer, monthly_price):
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    draft = stripe.Invoice.create(api_key=KEY, customer=customer.id)
    assert [i.id for i in stripe.Invoice.list(api_key=KEY, status="draft").data] == [draft.id]
    assert [i.id for i in stripe.Invoice.list(api_key=KEY, subscription=sub.id).data] == [sub.latest_invoice]
    assert len(stripe.Invoice.list(api_key=KEY, customer=customer.id).data) == 2


def test_hosted_invoice_page_and_pdf_are_served(emu, customer):
    invoice = draft_with_items(customer, 2500)
    finalized = stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    status, headers, body = emu.handle("GET", finalized.hosted_invoice_url, {}, None)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert finalized.number.encode() in body and b"$25.00" in body
    status, headers, body = emu.handle("GET", finalized.invoice_pdf, {}, None)
    assert status == 200 and headers["Content-Type"] == "application/pdf"
    assert body.startswith(b"%PDF-1.4") and body.rstrip().endswith(b"%%EOF")
    assert finalized.number.encode() in body
    status, _, _ = emu.handle(
        "GET", finalized.hosted_invoice_url.rsplit("/", 1)[0] + "/wrong-token", {}, None
    )
    assert status == 404


def test_preview_of_nothing_is_an_error(emu, customer):
    with pytest.raises(stripe.InvalidRequestError, match="Nothing to invoice"):
        stripe.Invoice.create_preview(api_key=KEY, customer=customer.id)


def test_a_send_invoice_invoice_is_paid_on_its_hosted_page_with_a_test_card(emu):
    from urllib.parse import urlencode, urlsplit

    cust = stripe.Customer.create(api_key=KEY, email="payer@example.com")  # no card on file
    stripe.InvoiceItem.create(
        api_key=KEY, customer=cust.id, amount=4200, currency="usd", description="Consulting"
    )
    invoice = stripe.Invoice.create(
        api_key=KEY,
        customer=cust.id,
        collection_method="send_invoice",
        days_until_due=14,
        pending_invoice_items_behavior="include",
    )
    finalized = stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    assert (finalized.status, finalized.amount_due) == ("open", 4200)
    assert finalized.due_date == finalized.status_transitions.finalized_at + 14 * 86400
    stripe.Invoice.send_invoice(invoice.id, api_key=KEY)
    page = urlsplit(finalized.hosted_invoice_url).path
    status, _, body = emu.handle("GET", page, {}, None)
    assert status == 200 and b"Pay with" in body and b"$42.00" in body
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = emu.handle("POST", page + "/pay", form, urlencode({"card": "decline"}))
    assert status == 402 and b"declined" in body
    assert stripe.Invoice.retrieve(invoice.id, api_key=KEY).status == "open"
    status, headers, _ = emu.handle("POST", page + "/pay", form, urlencode({"card": "success"}))
    assert status == 303 and headers["Location"] == finalized.hosted_invoice_url
    paid = stripe.Invoice.retrieve(invoice.id, api_key=KEY)
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 4200, 0)
    types = emu.event_types()
    assert types.index("invoice.sent") < types.index("invoice.paid")
    assert "invoice.payment_succeeded" in types and "charge.succeeded" in types
    status, headers, body = emu.handle("GET", urlsplit(paid.invoice_pdf).path, {}, None)
    assert status == 200 and headers["Content-Type"] == "application/pdf" and body.startswith(b"%PDF")

"""Stripe invoices kept whole: every line, the right status whatever the order or repetition of
the webhooks (delivered for real through dj-stripe's endpoint), the subscription from
`parent.subscription_details`, and the backfill command."""

from __future__ import annotations

import pytest
import stripe
from django.core.management import call_command

from billing.services import payment_method_attach, subscription_create
from invoices.models import Invoice, InvoiceLine
from invoices.services import stripe_invoice_save
from tests.stripe_helpers import STRIPE_KEY, post

pytestmark = pytest.mark.django_db


def test_an_invoice_of_25_lines_is_mirrored_whole(webhooks, billing_org, stripe_invoice):
    amounts = [100 * n for n in range(1, 26)]
    created = stripe_invoice(billing_org, amounts)
    assert created.lines.has_more is True and len(created.lines.data) == 10
    webhooks.deliver()
    invoice = Invoice.objects.get(stripe_id=created.id)
    lines = list(invoice.lines.order_by("position"))
    assert [line.amount for line in lines] == amounts
    assert [line.description for line in lines][:2] == ["Item 1", "Item 2"]
    assert {line.kind for line in lines} == {"invoice_item"}
    assert len({line.stripe_id for line in lines}) == 25
    assert (invoice.status, invoice.kind, invoice.organization_id) == ("open", "stripe", billing_org.id)
    assert invoice.number == created.number and invoice.number
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (32500, 32500, 32500)
    assert invoice.currency == "usd" and invoice.tax == 0
    assert invoice.hosted_url == created.hosted_invoice_url and invoice.stripe_pdf_url == created.invoice_pdf
    assert invoice.lines_final is True and invoice.finalized_at is not None
    assert invoice.customer_email == billing_org.billing_email
    assert sum(line.amount for line in lines) == invoice.subtotal


def test_the_status_follows_stripe_through_paid(webhooks, billing_org, stripe_invoice):
    payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa", set_default=True)
    created = stripe_invoice(billing_org, [1200, 800])
    webhooks.deliver()
    assert Invoice.objects.get(stripe_id=created.id).status == "open"
    stripe.Invoice.pay(created.id, **STRIPE_KEY)
    webhooks.deliver()
    invoice = Invoice.objects.get(stripe_id=created.id)
    assert (invoice.status, invoice.amount_paid, invoice.amount_remaining) == ("paid", 2000, 0)
    assert invoice.paid_at is not None
    assert InvoiceLine.objects.filter(invoice=invoice).count() == 2


def test_deliveries_reversed_and_repeated_leave_the_final_status(
    recorder, webhooks, client, billing_org, stripe_invoice, django_capture_on_commit_callbacks
):
    payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa", set_default=True)
    created = stripe_invoice(billing_org, [100 * n for n in range(1, 13)])
    stripe.Invoice.pay(created.id, **STRIPE_KEY)
    webhooks.emulator.deliver_webhooks()
    invoice_events = [d for d in recorder.sent if b'"invoice.' in d[2]]
    types = [__import__("json").loads(d[2])["type"] for d in invoice_events]
    assert {"invoice.created", "invoice.finalized", "invoice.paid"} <= set(types)
    Invoice.objects.all().delete()
    for delivery in reversed(invoice_events):
        for _ in range(3):
            with django_capture_on_commit_callbacks(execute=True):
                assert post(client, delivery).status_code == 200
    invoice = Invoice.objects.get(stripe_id=created.id)
    assert (invoice.status, invoice.amount_paid) == ("paid", 7800)
    assert invoice.lines.count() == 12 and invoice.lines_final


def test_a_stale_payload_never_moves_an_invoice_back(webhooks, billing_org, stripe_invoice):
    created = stripe_invoice(billing_org, [500])
    open_copy = stripe.Invoice.retrieve(created.id, **STRIPE_KEY).to_dict()
    stripe.Invoice.void_invoice(created.id, **STRIPE_KEY)
    webhooks.deliver()
    assert Invoice.objects.get(stripe_id=created.id).status == "void"
    draft_copy = {**open_copy, "status": "draft"}
    for stale in (open_copy, draft_copy):
        result = stripe_invoice_save(data=stale)
        assert result.stale is True
    invoice = Invoice.objects.get(stripe_id=created.id)
    assert invoice.status == "void" and invoice.voided_at is not None


def test_uncollectible_then_paid_out_of_band(webhooks, billing_org, stripe_invoice):
    created = stripe_invoice(billing_org, [700])
    stripe.Invoice.mark_uncollectible(created.id, **STRIPE_KEY)
    webhooks.deliver()
    invoice = Invoice.objects.get(stripe_id=created.id)
    assert invoice.status == "uncollectible" and invoice.marked_uncollectible_at is not None
    stripe.Invoice.pay(created.id, paid_out_of_band=True, **STRIPE_KEY)
    webhooks.deliver()
    assert Invoice.objects.get(stripe_id=created.id).status == "paid"


def test_a_failed_payment_keeps_the_invoice_open(webhooks, billing_org, stripe_invoice):
    payment_method_attach(
        organization=billing_org, payment_method_id="pm_card_chargeCustomerFail", set_default=True
    )
    created = stripe_invoice(billing_org, [5000])
    with pytest.raises(stripe.CardError):
        stripe.Invoice.pay(created.id, **STRIPE_KEY)
    webhooks.deliver()
    assert "invoice.payment_failed" in webhooks.emulator.event_types()
    invoice = Invoice.objects.get(stripe_id=created.id)
    assert (invoice.status, invoice.amount_remaining) == ("open", 5000)


def test_a_deleted_draft_goes_and_a_draft_is_kept_in_step(webhooks, billing_org, stripe_invoice):
    draft = stripe_invoice(billing_org, [300], finalize=False)
    webhooks.deliver()
    assert Invoice.objects.get(stripe_id=draft.id).status == "draft"
    stripe.Invoice.delete(draft.id, **STRIPE_KEY)
    webhooks.deliver()
    assert not Invoice.objects.filter(stripe_id=draft.id).exists()


def test_a_subscription_invoice_names_its_subscription(webhooks, billing_org):
    subscription = subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    webhooks.deliver()
    invoice = Invoice.objects.get(organization=billing_org)
    assert invoice.stripe_subscription_id == subscription.id
    assert invoice.status == "paid" and invoice.billing_reason == "subscription_create"
    line = invoice.lines.get()
    assert line.kind == "subscription" and line.price_id and line.amount == invoice.total > 0
    assert (
        line.period_start
        and line.period_end
        and (invoice.period_start, invoice.period_end)
        == (
            line.period_start,
            line.period_end,
        )
    )


def test_an_invoice_of_a_customer_that_is_no_organization_is_ignored(webhooks, catalogue):
    stranger = stripe.Customer.create(email="x@example.com", **STRIPE_KEY)
    invoice = stripe.Invoice.create(customer=stranger.id, **STRIPE_KEY)
    webhooks.deliver()
    assert not Invoice.objects.filter(stripe_id=invoice.id).exists()


def test_backfill_stores_every_invoice_whole_once(billing_org, stripe_invoice, stripe_emulator):
    first = stripe_invoice(billing_org, [10 * n for n in range(1, 31)])
    second = stripe_invoice(billing_org, [250], finalize=False)
    call_command("backfill_stripe_invoices")
    assert Invoice.objects.get(stripe_id=first.id).lines.count() == 30
    assert Invoice.objects.get(stripe_id=second.id).status == "draft"
    before = list(Invoice.objects.values_list("id", "status", "total").order_by("id"))
    call_command("backfill_stripe_invoices", organization=[str(billing_org.id)])
    assert list(Invoice.objects.values_list("id", "status", "total").order_by("id")) == before
    assert InvoiceLine.objects.count() == 31


def test_a_renewal_on_a_test_clock_is_kept_in_step_from_draft_to_paid(catalogue, billing_owner, webhooks):
    from tests.stripe_helpers import advance, organization_on_test_clock

    organization, clock = organization_on_test_clock(owner=billing_owner)
    subscription = subscription_create(
        organization=organization,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    webhooks.deliver()
    first = Invoice.objects.get(organization=organization)
    advance(clock, to=int(first.period_end.timestamp()) + 60)  # the renewal is a draft for an hour
    webhooks.deliver()
    renewal = Invoice.objects.filter(organization=organization).exclude(pk=first.pk).get()
    assert renewal.status == "draft" and renewal.stripe_subscription_id == subscription.id
    advance(clock, days=0.1)
    webhooks.deliver()
    renewal.refresh_from_db()
    assert (renewal.status, renewal.billing_reason) == ("paid", "subscription_cycle")
    assert renewal.number and renewal.lines_final and renewal.lines.get().kind == "subscription"
    assert renewal.period_start == first.period_end

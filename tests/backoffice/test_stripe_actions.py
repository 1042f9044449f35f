"""Back-office actions that go through Stripe (the emulator): cancel and resume a subscription,
refund a payment in full or in part (credits bought with it taken back), replay a webhook
delivery that failed. One audit row per action; a refused action writes none and changes
nothing, at Stripe either."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import stripe
from djstripe.models import WebhookEventTrigger

from billing.models import AuditEntry, Organization
from billing.services import subscription_create
from credits.models import CreditPurchase, PurchaseStatus
from credits.selectors import credit_summary_get
from credits.services import credit_consume
from tests.stripe_helpers import STRIPE_KEY, post

pytestmark = pytest.mark.django_db


def url(org, action: str) -> str:
    return f"/admin/billing/organizationpage/{org.pk}/{action}/"


def balance(org) -> D:
    return credit_summary_get(organization=org).balance


@pytest.fixture
def subscribed(billing_org, webhooks):
    subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    webhooks.deliver()
    billing_org.refresh_from_db()
    return billing_org


def test_cancel_at_period_end_then_resume(web, subscribed, stripe_emulator, webhooks):
    sub_id = subscribed.stripe_subscription_id
    page = web.get(url(subscribed, "cancel"))
    assert page.status_code == 200 and "At the end of the paid period" in page.content.decode()
    assert web.post(url(subscribed, "cancel"), {"when": "period_end", "reason": ""}).status_code == 200
    assert AuditEntry.objects.count() == 0
    assert stripe_emulator.get(sub_id)["cancel_at_period_end"] is False

    done = web.post(url(subscribed, "cancel"), {"when": "period_end", "reason": "Customer asked by phone"})
    assert done.status_code == 302
    assert stripe_emulator.get(sub_id)["cancel_at_period_end"] is True
    entry = AuditEntry.objects.get()
    assert entry.action == "subscription_cancel" and entry.target == f"subscription {sub_id}"
    assert entry.before["cancel_at_period_end"] is False and entry.after["cancel_at_period_end"] is True
    assert entry.after["immediately"] is False

    done = web.post(url(subscribed, "resume"), {"reason": "Changed their mind"})
    assert done.status_code == 302
    assert stripe_emulator.get(sub_id)["cancel_at_period_end"] is False
    resume = AuditEntry.objects.get(action="subscription_resume")
    assert resume.before["cancel_at_period_end"] is True and resume.after["cancel_at_period_end"] is False

    # Nothing scheduled any more: resuming again is refused, logs nothing.
    refused = web.post(url(subscribed, "resume"), {"reason": "again"})
    assert refused.status_code == 200 and "nothing to resume" in refused.content.decode()
    assert AuditEntry.objects.count() == 2


def test_cancel_now_ends_the_subscription(web, subscribed, stripe_emulator, webhooks):
    done = web.post(url(subscribed, "cancel"), {"when": "now", "reason": "Fraud"})
    assert done.status_code == 302
    webhooks.deliver()
    assert stripe_emulator.get(subscribed.stripe_subscription_id)["status"] == "canceled"
    assert Organization.objects.get(pk=subscribed.pk).subscription_status == "canceled"
    entry = AuditEntry.objects.get()
    assert entry.after["status"] == "canceled" and entry.after["immediately"] is True


def test_cancel_without_a_subscription_is_refused(web, billing_org, stripe_emulator):
    refused = web.post(url(billing_org, "cancel"), {"when": "now", "reason": "Test"})
    assert refused.status_code == 200 and "no subscription" in refused.content.decode()
    assert AuditEntry.objects.count() == 0


def _purchase(billing_client, billing_org) -> str:
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/credits/purchase",
        {"pack": "p1k", "payment_method": "pm_card_visa", "idempotency_key": "buy-1"},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["payment_intent"]


def _refunds(emulator) -> list:
    return emulator.objects("refund")


def test_partial_then_full_refund_takes_the_credits_back(
    web, webhooks, billing_client, billing_org, pack, stripe_emulator
):
    intent = _purchase(billing_client, billing_org)
    webhooks.deliver()
    credit_consume(organization=billing_org, amount=300, reason="used", idempotency_key="use-1")
    page = web.get(url(billing_org, "refund"))
    assert (
        page.status_code == 200
        and intent in page.content.decode()
        and "10.00 USD refundable" in page.content.decode()
    )

    # More than was paid: refused before Stripe is called.
    refused = web.post(
        url(billing_org, "refund"),
        {"payment_intent": intent, "amount": "10.01", "reason": "x", "idempotency_key": "r0"},
    )
    assert refused.status_code == 200 and "Between 1 and 1000" in refused.content.decode()
    assert (
        _refunds(stripe_emulator) == [] and AuditEntry.objects.count() == 0 and balance(billing_org) == D(700)
    )

    half = {"payment_intent": intent, "amount": "5.00", "reason": "Half back", "idempotency_key": "r1"}
    done = web.post(url(billing_org, "refund"), half)
    assert done.status_code == 302
    assert web.post(url(billing_org, "refund"), half).status_code == 302  # the form sent twice: one refund
    assert [r["amount"] for r in _refunds(stripe_emulator)] == [500]
    assert balance(billing_org) == D(200)  # 500 credits of the 700 unspent taken back at once
    entry = AuditEntry.objects.get()
    assert entry.action == "payment_refund" and entry.reason == "Half back"
    assert (entry.before["amount_refunded"], entry.after["amount_refunded"]) == (0, 500)
    assert (entry.before["balance"], entry.after["balance"], entry.after["credits_taken_back"]) == (
        "700.0000",
        "200.0000",
        "500.0000",
    )
    webhooks.deliver()  # charge.refunded arrives: the same cumulative figure, nothing more taken
    assert balance(billing_org) == D(200)

    done = web.post(
        url(billing_org, "refund"),
        {"payment_intent": intent, "amount": "", "reason": "The rest", "idempotency_key": "r2"},
    )
    assert done.status_code == 302
    webhooks.deliver()
    assert [r["amount"] for r in _refunds(stripe_emulator)] == [500, 500]
    assert balance(billing_org) == D(0)
    assert CreditPurchase.objects.get().status == PurchaseStatus.REFUNDED
    assert AuditEntry.objects.filter(action="payment_refund").count() == 2

    # Nothing left to refund: refused, no Stripe call, no row.
    refused = web.post(
        url(billing_org, "refund"),
        {"payment_intent": intent, "amount": "", "reason": "x", "idempotency_key": "r3"},
    )
    assert refused.status_code == 200
    assert len(_refunds(stripe_emulator)) == 2 and AuditEntry.objects.count() == 2


def test_refund_of_another_organizations_payment_is_refused(
    web, webhooks, billing_client, billing_org, pack, stripe_emulator, billing_owner
):
    from billing.services import organization_create

    intent = _purchase(billing_client, billing_org)
    other = organization_create(name="Other", billing_email="o@other.test", owner=billing_owner)
    from invoices.backoffice.services import backoffice_payment_refund
    from tests.billing.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    with pytest.raises(Exception, match="No such payment"):
        backoffice_payment_refund(
            actor=staff,
            organization=other,
            payment_intent_id=intent,
            amount=None,
            reason="wrong org",
            idempotency_key="k",
        )
    assert _refunds(stripe_emulator) == [] and AuditEntry.objects.count() == 0


def test_replay_a_failed_webhook_delivery(
    web, recorder, client, billing_org, stripe_emulator, django_capture_on_commit_callbacks
):
    """A subscription on a price the catalogue does not know fails its handler (the delivery is
    kept with its error); once the price is known, staff replay the delivery from the admin."""
    from djstripe.models import Customer

    from billing.models import PlanPrice

    customer = Customer.objects.get(subscriber=billing_org)
    price = stripe.Price.create(
        product="plan_business",
        unit_amount=4200,
        currency="usd",
        recurring={"interval": "month"},
        **STRIPE_KEY,
    )
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id, **STRIPE_KEY)
    stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], default_payment_method=card.id, **STRIPE_KEY
    )
    stripe_emulator.deliver_webhooks()
    client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, recorder.of_type("customer.subscription.created")[0]).status_code == 500
    trigger = WebhookEventTrigger.objects.filter(processed=False, valid=True).latest("created")
    assert trigger.exception

    listing = web.get("/admin/djstripe/webhookeventtrigger/")
    assert listing.status_code == 200 and f"/{trigger.pk}/replay/" in listing.content.decode()
    replay_url = f"/admin/djstripe/webhookeventtrigger/{trigger.pk}/replay/"
    failed_again = web.post(replay_url, {"reason": "first try"})
    assert failed_again.status_code == 200 and "failed again" in failed_again.content.decode()
    assert AuditEntry.objects.count() == 0
    assert not WebhookEventTrigger.objects.get(pk=trigger.pk).processed

    PlanPrice.objects.create(
        plan_id=PlanPrice.objects.get(plan__code="business", interval="month").plan_id,
        interval="month",
        amount=4200,
        currency="eur",
        stripe_price_id=price.id,
    )
    with django_capture_on_commit_callbacks(execute=True):
        done = web.post(replay_url, {"reason": "price added"})
    assert done.status_code == 302
    assert WebhookEventTrigger.objects.get(pk=trigger.pk).processed
    org = Organization.objects.get(pk=billing_org.pk)
    assert (org.plan.code, org.subscription_status) == ("business", "active")
    entry = AuditEntry.objects.get()
    assert entry.action == "webhook_replay" and entry.organization_id == billing_org.pk
    assert entry.before["processed"] is False and entry.after["processed"] is True

    assert web.post(replay_url, {"reason": "twice"}).status_code == 200  # processed already: refused
    assert AuditEntry.objects.count() == 1

"""A tenant gains value only by paying: trials are the plan's and come once, a trial invoice grants
no credits (unless the plan says so, and then once, taken back on a cancellation during the
trial), and a card belongs to one customer for life. Driven through the API with webhooks
really delivered by the emulator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from djstripe.models import Subscription
from rest_framework.test import APIClient

from billing.models import Organization, PaymentMethodOwner, Plan, Role
from billing.selectors import organization_customer_get
from billing.services import api_key_create, organization_create
from credits.models import CreditAccount, CreditPurchase, CreditTransaction
from credits.selectors import ledger_drift_list
from credits.services import credit_consume
from tests.billing.factories import UserFactory

pytestmark = pytest.mark.django_db


def balance(org) -> Decimal:
    account = CreditAccount.objects.filter(organization=org).first()
    return account.balance if account is not None else Decimal(0)


def billing_key_client(organization) -> APIClient:
    client = APIClient()
    key = api_key_create(organization=organization, name="billing", role=Role.BILLING).raw_key
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def trial_loop(client, organization, webhooks, runs: int = 10) -> list[int]:
    """The attack: subscribe with a huge client-chosen trial and no card, wait for the $0 trial
    invoice, cancel at once, subscribe again."""
    base = f"/api/v1/organizations/{organization.id}/subscription"
    statuses = []
    for _ in range(runs):
        response = client.post(
            base, {"plan": "enterprise", "interval": "month", "trial_days": 700}, format="json"
        )
        statuses.append(response.status_code)
        webhooks.deliver()
        if response.status_code == 201:
            client.post(f"{base}/cancel", {"immediately": True}, format="json")
            webhooks.deliver()
    return statuses


def test_the_trial_loop_yields_one_plan_length_trial_and_no_credits(billing_org, webhooks, stripe_emulator):
    client = billing_key_client(billing_org)
    statuses = trial_loop(client, billing_org, webhooks)
    # One trial; then no card and no trial: refused with a clear 400, nothing created.
    assert statuses[0] == 201 and set(statuses[1:]) == {400}
    subscriptions = list(Subscription.objects.filter(customer__subscriber=billing_org))
    assert len(subscriptions) == 1
    data = subscriptions[0].stripe_data
    assert data["trial_end"] - data["trial_start"] == 30 * 86400  # the plan's 30 days, not the 700 asked
    # The $0 trial invoice was paid, and granted nothing: the tenant paid nothing.
    paid_trial = [
        i for i in stripe_emulator.objects("invoice") if i["status"] == "paid" and i["amount_paid"] == 0
    ]
    assert paid_trial
    assert balance(billing_org) == 0
    assert not CreditTransaction.objects.filter(organization=billing_org).exists()
    assert Organization.objects.get(pk=billing_org.pk).trial_used_at is not None
    assert ledger_drift_list().clean


def test_trial_credits_when_the_plan_grants_them_come_once_and_go_on_cancel(billing_org, webhooks):
    Plan.objects.filter(code="enterprise").update(trial_grants_credits=True)
    client = billing_key_client(billing_org)
    base = f"/api/v1/organizations/{billing_org.id}/subscription"
    assert client.post(base, {"plan": "enterprise", "interval": "month"}, format="json").status_code == 201
    webhooks.deliver()
    assert balance(billing_org) == Decimal(100000)  # the plan's included credits, for the trial
    credit_consume(organization=billing_org, amount=250)  # used during the trial: stays used
    client.post(f"{base}/cancel", {"immediately": True}, format="json")
    webhooks.deliver()
    assert balance(billing_org) == 0  # the unspent 99,750 were taken back
    taken = CreditTransaction.objects.get(organization=billing_org, kind="expire")
    assert taken.amount == Decimal(-99750) and "Trial" in taken.reason
    statuses = trial_loop(client, billing_org, webhooks, runs=9)
    assert set(statuses) == {400}
    granted = CreditTransaction.objects.filter(organization=billing_org, kind="grant")
    assert granted.count() == 1  # once per organization, whatever the loop does
    assert balance(billing_org) == 0
    assert ledger_drift_list().clean


def test_a_second_subscription_with_a_card_pays_at_once(billing_org, webhooks, stripe_emulator):
    client = billing_key_client(billing_org)
    base = f"/api/v1/organizations/{billing_org.id}/subscription"
    assert client.post(base, {"plan": "starter", "interval": "month"}, format="json").status_code == 201
    webhooks.deliver()
    client.post(f"{base}/cancel", {"immediately": True}, format="json")
    webhooks.deliver()
    again = client.post(
        base, {"plan": "starter", "interval": "month", "payment_method": "pm_card_visa"}, format="json"
    )
    assert (
        again.status_code == 201 and again.json()["status"] == "active" and again.json()["trial_end"] is None
    )
    webhooks.deliver()
    # Paid: now the period's credits are granted.
    assert balance(billing_org) == Decimal(1000)


def test_a_client_may_shorten_the_trial_never_lengthen_it(billing_org, webhooks):
    client = billing_key_client(billing_org)
    response = client.post(
        f"/api/v1/organizations/{billing_org.id}/subscription",
        {"plan": "starter", "interval": "month", "trial_days": 3},
        format="json",
    )
    assert response.status_code == 201
    sub = Subscription.objects.get(customer__subscriber=billing_org).stripe_data
    assert sub["trial_end"] - sub["trial_start"] == 3 * 86400


def test_staff_override_of_the_trial_length(billing_org, webhooks):
    Organization.objects.filter(pk=billing_org.pk).update(trial_days_override=45)
    client = billing_key_client(billing_org)
    client.post(f"/api/v1/organizations/{billing_org.id}/subscription", {"plan": "starter"}, format="json")
    sub = Subscription.objects.get(customer__subscriber=billing_org).stripe_data
    assert sub["trial_end"] - sub["trial_start"] == 45 * 86400


def test_checkout_offers_no_second_trial(billing_org, webhooks, stripe_emulator):
    Organization.objects.filter(pk=billing_org.pk).update(trial_used_at=timezone.now())
    client = billing_key_client(billing_org)
    response = client.post(
        f"/api/v1/organizations/{billing_org.id}/checkout-sessions",
        {
            "kind": "subscription",
            "plan": "starter",
            "success_url": "http://localhost/ok",
            "cancel_url": "http://localhost/no",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    session = stripe_emulator.get(response.json()["id"])
    assert not (session.get("subscription_data") or {}).get("trial_period_days")


# --------------------------------------------------------------------------- cards
@pytest.fixture
def two_tenants(catalogue):
    a_owner, b_owner = UserFactory(), UserFactory()
    a = organization_create(name="A", billing_email="a@example.com", owner=a_owner)
    b = organization_create(name="B", billing_email="b@example.com", owner=b_owner)
    clients = {}
    for org, owner in ((a, a_owner), (b, b_owner)):
        client = APIClient()
        client.force_authenticate(owner)
        clients[org.pk] = client
    return a, b, clients


def test_a_card_another_tenant_removed_is_404_and_charges_nothing(two_tenants, stripe_emulator):
    a, b, clients = two_tenants
    added = clients[b.pk].post(
        f"/api/v1/organizations/{b.id}/payment-methods", {"payment_method": "pm_card_visa"}, format="json"
    )
    assert added.status_code == 201
    card = added.json()["id"]
    assert clients[b.pk].delete(f"/api/v1/organizations/{b.id}/payment-methods/{card}").status_code == 204
    intents_before = len(stripe_emulator.objects("payment_intent"))

    attach = clients[a.pk].post(
        f"/api/v1/organizations/{a.id}/payment-methods", {"payment_method": card}, format="json"
    )
    assert attach.status_code == 404 and attach.json()["error"] == "not_found"
    purchase = clients[a.pk].post(
        f"/api/v1/organizations/{a.id}/credits/purchase",
        {"pack": "credits-1k", "payment_method": card, "idempotency_key": "steal-1"},
        format="json",
    )
    assert purchase.status_code == 404
    assert len(stripe_emulator.objects("payment_intent")) == intents_before
    assert not CreditPurchase.objects.filter(organization=a).exists()  # nothing left "processing"
    assert balance(a) == 0
    assert stripe_emulator.get(card)["customer"] is None
    assert PaymentMethodOwner.objects.get(payment_method_id=card).organization_id == b.pk


def test_another_tenants_attached_card_is_404(two_tenants, stripe_emulator):
    a, b, clients = two_tenants
    card = (
        clients[b.pk]
        .post(
            f"/api/v1/organizations/{b.id}/payment-methods", {"payment_method": "pm_card_visa"}, format="json"
        )
        .json()["id"]
    )
    for payload in ({"payment_method": card}, {"payment_method": card, "set_default": True}):
        response = clients[a.pk].post(f"/api/v1/organizations/{a.id}/payment-methods", payload, format="json")
        assert response.status_code == 404
    assert stripe_emulator.get(card)["customer"] == organization_customer_get(organization=b).id
    assert PaymentMethodOwner.objects.get(payment_method_id=card).organization_id == b.pk


def test_the_owner_cannot_reattach_its_own_detached_card_either(two_tenants, stripe_emulator):
    """Stripe refuses a detached card for good; the product answers 404 and keeps its record."""
    a, _, clients = two_tenants
    card = (
        clients[a.pk]
        .post(
            f"/api/v1/organizations/{a.id}/payment-methods", {"payment_method": "pm_card_visa"}, format="json"
        )
        .json()["id"]
    )
    clients[a.pk].delete(f"/api/v1/organizations/{a.id}/payment-methods/{card}")
    again = clients[a.pk].post(
        f"/api/v1/organizations/{a.id}/payment-methods", {"payment_method": card}, format="json"
    )
    assert again.status_code == 404
    assert PaymentMethodOwner.objects.filter(payment_method_id=card, organization=a).exists()

"""Issue 17, Found 4: a purchase that fails before anything is charged leaves no stuck
`processing` row and does not use up its idempotency key; `reconcile` reports purchases stuck in
flight past a bound."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.services import organization_create
from credits.models import CreditPurchase, PurchaseKind, PurchaseStatus
from credits.selectors import credit_purchases_stuck_list
from tests.billing.factories import UserFactory
from tests.credits.factories import CreditPackFactory

from .conftest import assert_error_shape

pytestmark = pytest.mark.django_db


@pytest.fixture
def pack(db):
    return CreditPackFactory(code="p1k", name="1,000 credits", credits=D(1000), amount=1000)


def purchase(client, org, **body):
    payload = {"pack": "p1k", "payment_method": "pm_card_visa", "idempotency_key": "buy-1", **body}
    return client.post(f"/api/v1/organizations/{org.id}/credits/purchase", payload, format="json")


def in_flight(org):
    return CreditPurchase.objects.filter(
        organization=org, status__in=[PurchaseStatus.PENDING, PurchaseStatus.PROCESSING]
    )


@pytest.mark.parametrize(
    ("card", "status"),
    [("pm_does_not_exist", 404), ("tok_visa", 400), ("card_1AbC", 400), ("", 400)],
)
def test_a_card_refused_before_stripe_leaves_nothing_and_the_key_is_free(
    card, status, billing_client, billing_org, pack
):
    if card == "":  # no card given and none saved
        response = purchase(billing_client, billing_org, payment_method="")
    else:
        response = purchase(billing_client, billing_org, payment_method=card)
    assert_error_shape(response, status)
    assert not CreditPurchase.objects.filter(organization=billing_org).exists()
    retry = purchase(billing_client, billing_org)  # the same key, corrected
    assert retry.status_code == 201, retry.json()
    assert retry.json()["status"] == "succeeded" and not in_flight(billing_org).exists()


def test_another_tenants_card_is_a_404_and_leaves_nothing(billing_client, billing_org, pack, catalogue):
    other = organization_create(name="Other", billing_email="o@other.test", owner=UserFactory())
    from billing.services import payment_method_attach

    theirs = payment_method_attach(organization=other, payment_method_id="pm_card_visa").id
    response = purchase(billing_client, billing_org, payment_method=theirs)
    assert_error_shape(response, 404, "not_found")
    assert not CreditPurchase.objects.filter(organization=billing_org).exists()
    assert purchase(billing_client, billing_org).status_code == 201


def test_stripe_refusing_the_charge_fails_the_purchase_and_frees_the_key(
    billing_client, billing_org, pack, stripe_emulator
):
    stripe_emulator.faults.add(method="POST", path="/v1/payment_intents", status=400, times=1)
    response = purchase(billing_client, billing_org)
    assert 400 <= response.status_code < 600 and response.status_code != 500
    assert_error_shape(response, response.status_code)
    failed = CreditPurchase.objects.get(organization=billing_org)
    assert failed.status == PurchaseStatus.FAILED and failed.idempotency_key is None
    assert not in_flight(billing_org).exists()
    retry = purchase(billing_client, billing_org)
    assert retry.status_code == 201 and retry.json()["status"] == "succeeded", retry.json()


def test_reconcile_reports_purchases_stuck_in_flight(billing_org, pack):
    account = billing_org.credit_account if hasattr(billing_org, "credit_account") else None
    from django.db import transaction

    from credits.locks import account_lock

    with transaction.atomic():
        account = account_lock(organization_id=billing_org.pk)
    fresh = CreditPurchase.objects.create(
        organization=billing_org, account=account, kind=PurchaseKind.PACK, status=PurchaseStatus.PROCESSING,
        pack=pack, credits=pack.credits, amount=pack.amount, created_at=timezone.now(),
    )  # fmt: skip
    assert credit_purchases_stuck_list() == []
    old = timezone.now() - timedelta(hours=2)
    CreditPurchase.objects.filter(pk=fresh.pk).update(updated_at=old, created_at=old)
    stuck = credit_purchases_stuck_list()
    assert len(stuck) == 1 and str(fresh.pk) in stuck[0] and "no PaymentIntent" in stuck[0]
    with pytest.raises(SystemExit) as exited:
        call_command("reconcile", "--no-stripe")
    assert exited.value.code == 1
    CreditPurchase.objects.filter(pk=fresh.pk).update(status=PurchaseStatus.FAILED)
    assert credit_purchases_stuck_list() == []

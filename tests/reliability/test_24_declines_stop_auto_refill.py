"""Item 24: a declined auto-refill is not retried (one request to Stripe per refill), grants
nothing, and after `CREDITS_AUTO_REFILL_MAX_DECLINES` declines in a row auto-refill turns itself
off and tells the owners; later crossings start no refill."""

from decimal import Decimal

import pytest
from django.core import mail

from billing.services import payment_method_attach
from credits.models import AutoRefill, CreditGrant, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.services import auto_refill_set, credit_consume, credit_grant
from tests.credits.factories import CreditPackFactory

from .helpers import balance

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("max_declines", [2, 3])
def test_declines_are_not_retried_and_stop_auto_refill(
    billing_org, stripe_emulator, settings, celery_eager, django_capture_on_commit_callbacks, max_declines
):
    settings.CREDITS_AUTO_REFILL_MAX_DECLINES = max_declines
    pack = CreditPackFactory(code="d1k", credits=Decimal(1000), amount=1000)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    stripe_emulator.faults.add(method="POST", path="/v1/payment_intents", decline="card_declined", times=None)
    credit_grant(organization=billing_org, amount=100)
    auto_refill_set(
        organization=billing_org,
        enabled=True,
        threshold=150,
        pack=pack,
        payment_method=card,
        max_refills_per_day=10,
    )
    for i in range(max_declines + 2):
        with django_capture_on_commit_callbacks(execute=True):
            credit_consume(organization=billing_org, amount=1, idempotency_key=f"c{i}")
    refills = CreditPurchase.objects.filter(kind=PurchaseKind.AUTO_REFILL)
    assert refills.count() == max_declines
    assert set(refills.values_list("status", flat=True)) == {PurchaseStatus.FAILED}
    assert stripe_emulator.request_count("POST", "/v1/payment_intents", include_faults=True) == max_declines
    refill = AutoRefill.objects.get(account__organization=billing_org)
    assert refill.enabled is False and f"{max_declines} failed payments" in refill.disabled_reason
    assert not CreditGrant.objects.filter(organization=billing_org, source="purchase").exists()
    assert balance(billing_org) == Decimal(100 - max_declines - 2)
    assert any("auto" in m.subject.lower() for m in mail.outbox), [m.subject for m in mail.outbox]

"""Item 27: a shortfall larger than one refill (the threshold far above the balance, or a big
consumption): one charge sized to bring the balance back to the threshold, in whole refill
units; past the hourly cap (`CREDITS_AUTO_REFILL_HOURLY_CAP`), the charge is cut to what fits
and the operators are alerted."""

import logging
from decimal import Decimal

import pytest

from billing.services import payment_method_attach
from credits.models import CreditPurchase, PurchaseKind, PurchaseStatus
from credits.services import auto_refill_set, credit_consume, credit_grant
from tests.credits.factories import CreditPackFactory

from .helpers import balance, ledger_sum

pytestmark = pytest.mark.django_db


@pytest.fixture
def refilling(billing_org, stripe_emulator, celery_eager):
    pack = CreditPackFactory(code="u100", credits=Decimal(100), amount=1000)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    credit_grant(organization=billing_org, amount=600)
    auto_refill_set(
        organization=billing_org,
        enabled=True,
        threshold=500,
        pack=pack,
        payment_method=card,
        max_refills_per_day=24,
    )
    return billing_org


def test_one_charge_sized_to_the_shortfall(refilling, stripe_emulator, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        credit_consume(organization=refilling, amount=555, idempotency_key="big")  # 45 left: 455 short
    (refill,) = CreditPurchase.objects.filter(kind=PurchaseKind.AUTO_REFILL)
    assert refill.status == PurchaseStatus.SUCCEEDED
    assert refill.credits == 500 and refill.amount == 5000  # five packs in one charge
    intents = stripe_emulator.objects("payment_intent")
    assert len(intents) == 1 and intents[0]["amount"] == 5000
    assert balance(refilling) == Decimal(545) == ledger_sum(refilling)  # back above the threshold


def test_past_the_hourly_cap_the_charge_is_cut_and_alerted(
    refilling, stripe_emulator, settings, caplog, django_capture_on_commit_callbacks
):
    settings.CREDITS_AUTO_REFILL_HOURLY_CAP = 3000  # three packs an hour
    with caplog.at_level(logging.ERROR, logger="alerts"), django_capture_on_commit_callbacks(execute=True):
        credit_consume(organization=refilling, amount=555, idempotency_key="big")
    (refill,) = CreditPurchase.objects.filter(kind=PurchaseKind.AUTO_REFILL)
    assert refill.amount == 3000 and refill.credits == 300
    alerts = [r for r in caplog.records if getattr(r, "alert", "") == "auto_refill_hourly_cap"]
    assert len(alerts) == 1 and "3 of 5" in alerts[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="alerts"), django_capture_on_commit_callbacks(execute=True):
        credit_consume(organization=refilling, amount=1, idempotency_key="more")  # still under, cap spent
    assert CreditPurchase.objects.filter(kind=PurchaseKind.AUTO_REFILL).count() == 1  # nothing more this hour
    assert sum(i["amount"] for i in stripe_emulator.objects("payment_intent")) == 3000
    assert balance(refilling) == Decimal(344) == ledger_sum(refilling)

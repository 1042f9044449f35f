"""Issue 17, Found 2: an auto-refill that could not be charged is refused when set, and one saved
before the bounds existed never turns a consumption into a 500."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from credits.models import AutoRefill, CreditAccount, CreditPurchase
from credits.services import credit_grant
from tests.credits.factories import CreditPackFactory

from .conftest import assert_error_shape, ledger_state

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def pack(db):
    return CreditPackFactory(code="p1k", credits=D(1000), amount=1000)  # 1 cent a credit


def refill_url(org):
    return f"/api/v1/organizations/{org.pk}/credits/auto-refill"


@pytest.mark.parametrize(
    "amount",
    [
        "100000000",  # 100,000,000 credits cost 100,000,000 cents: over Stripe's 99,999,999
        "2147483648",  # over the purchase's amount column too
        "9999999999999999",  # the largest the credits column takes, priced far past both
        "99999999999999999",  # 17 digits: over the credits column itself
        "1e10",
    ],
)
def test_put_refuses_an_amount_that_one_payment_cannot_charge(amount, organization, staff_client, pack):
    before = ledger_state(organization)
    response = staff_client.put(
        refill_url(organization),
        {"enabled": True, "threshold": "50", "amount": amount, "payment_method": "pm_card_visa"},
        format="json",
    )
    body = assert_error_shape(response, 400, "validation_error")
    assert "amount" in body["fields"], body
    assert not AutoRefill.objects.filter(account__organization=organization, enabled=True).exists()
    assert ledger_state(organization) == before


def test_the_largest_chargeable_amount_is_taken(organization, staff_client, pack):
    response = staff_client.put(
        refill_url(organization),
        {"enabled": True, "threshold": "50", "amount": "99999999", "payment_method": "pm_card_visa"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["amount"] == "99999999"


def test_a_bad_saved_setting_does_not_fail_the_consumption(organization, operator, pack, caplog):
    """A setting saved before the bounds (or a pack repriced since): the consumption that
    crosses the threshold succeeds, the refill is turned off with its reason, and it is logged."""
    credit_grant(organization=organization, amount=100, source="purchase", reference="seed")
    account = CreditAccount.objects.get(organization=organization)
    AutoRefill.objects.create(
        account=account, enabled=True, threshold=D(50), amount=D("9999999999999999"), payment_method="pm_x"
    )
    with caplog.at_level(logging.ERROR, logger="credits.services.ledger"):
        response = operator.post(
            f"/api/v1/organizations/{organization.pk}/credits/consume",
            {"amount": "60", "idempotency_key": "cross"},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert response.json()["balance"] == "40"
    refill = AutoRefill.objects.get(account=account)
    assert refill.enabled is False and "cannot be charged" in refill.disabled_reason
    assert not CreditPurchase.objects.filter(organization=organization).exists()
    assert any("cannot be charged" in r.getMessage() for r in caplog.records)
    summary = operator.get(f"/api/v1/organizations/{organization.pk}/credits").json()
    assert summary["auto_refill"]["enabled"] is False and summary["auto_refill"]["disabled_reason"]

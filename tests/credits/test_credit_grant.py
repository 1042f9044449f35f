from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from config.exceptions import IdempotencyConflict, ValidationFailed
from credits.models import CreditAccount, CreditGrant, CreditTransaction
from credits.selectors import credit_balance_by_source, credit_grants_expiring
from credits.services import credit_adjust, credit_balance_set, credit_consume, credit_grant

pytestmark = pytest.mark.django_db
D = Decimal


def test_first_grant_creates_the_account(organization):
    assert not CreditAccount.objects.filter(organization=organization).exists()
    result = credit_grant(
        organization=organization, amount="12.5", source="promo", reason="welcome", actor="staff:1"
    )
    account = CreditAccount.objects.get(organization=organization)
    assert account.balance == D("12.5") and result.balance == D("12.5")
    row = result.transaction
    assert (row.kind, row.amount, row.balance_after, row.grant_id, row.actor) == (
        "grant",
        D("12.5"),
        D("12.5"),
        result.grant.pk,
        "staff:1",
    )
    assert (result.grant.source, result.grant.amount, result.grant.remaining) == (
        "promo",
        D("12.5"),
        D("12.5"),
    )


def test_a_reference_grants_once(organization):
    first = credit_grant(organization=organization, amount=100, source="purchase", reference="pi_abc")
    second = credit_grant(organization=organization, amount=100, source="purchase", reference="pi_abc")
    assert first.created and not second.created
    assert second.grant.pk == first.grant.pk and second.transaction.pk == first.transaction.pk
    assert CreditAccount.objects.get(organization=organization).balance == D(100)


def test_grant_idempotency_key(organization):
    first = credit_grant(organization=organization, amount=5, reason="a", idempotency_key="g1")
    again = credit_grant(organization=organization, amount="5.0000", reason="a", idempotency_key="g1")
    assert not again.created and again.transaction.pk == first.transaction.pk
    with pytest.raises(IdempotencyConflict):
        credit_grant(organization=organization, amount=6, reason="a", idempotency_key="g1")
    assert CreditGrant.objects.filter(organization=organization).count() == 1


def test_by_source_and_expiring(organization):
    now = timezone.now()
    credit_grant(organization=organization, amount=10, source="purchase", reference="pi_1")
    credit_grant(
        organization=organization, amount=20, source="subscription", expires_at=now + timedelta(days=3)
    )
    credit_grant(organization=organization, amount=5, source="promo", expires_at=now + timedelta(days=3))
    credit_grant(organization=organization, amount=1, source="manual")
    credit_consume(organization=organization, amount=12)
    assert credit_balance_by_source(organization=organization) == {
        "purchased": D(0), "subscription": D(18), "promo": D(5), "manual": D(1), "refund": D(0),
    }  # fmt: skip
    expiring = credit_grants_expiring(organization=organization)
    assert [(e.amount, e.expires_at) for e in expiring] == [(D(23), now + timedelta(days=3))]


@pytest.mark.parametrize("amount", [0, -5, "x", "1e30"])
def test_grant_amount_must_be_positive(organization, amount):
    with pytest.raises(ValidationFailed):
        credit_grant(organization=organization, amount=amount)


def test_amounts_are_exact_decimals(organization):
    for _ in range(10):
        credit_grant(organization=organization, amount=0.1)
    assert CreditAccount.objects.get(organization=organization).balance == D("1.0000")


def test_adjust_up_and_down_with_a_reason(organization):
    credit_grant(organization=organization, amount=10, source="promo")
    up = credit_adjust(organization=organization, amount=5, reason="goodwill", actor="staff:9")
    assert up.transaction.kind == "adjust" and up.balance == D(15)
    assert up.transaction.grant.source == "manual"
    down = credit_adjust(organization=organization, amount=-12, reason="clawback", actor="staff:9")
    assert down.balance == D(3) and down.transaction.amount == D(-12)
    with pytest.raises(ValidationFailed):
        credit_adjust(organization=organization, amount=-4, reason="too much")
    with pytest.raises(ValidationFailed):
        credit_adjust(organization=organization, amount=1, reason="  ")


def test_set_balance_is_one_adjusting_row(organization):
    credit_grant(organization=organization, amount=10)
    result = credit_balance_set(organization=organization, balance="2.5", reason="support ticket 12")
    assert result.balance == D("2.5") and result.transaction.amount == D("-7.5")
    assert result.transaction.reason == "support ticket 12"
    up = credit_balance_set(organization=organization, balance=40, reason="migration")
    assert up.transaction.amount == D("37.5")
    same = credit_balance_set(organization=organization, balance=40, reason="no-op")
    assert same.transaction is None and same.balance == D(40)
    assert CreditTransaction.objects.filter(organization=organization, kind="adjust").count() == 2


def test_grant_that_expired_already_expires_at_once(organization):
    past = timezone.now() - timedelta(minutes=1)
    result = credit_grant(organization=organization, amount=5, source="subscription", expires_at=past)
    assert result.balance == 0
    assert list(
        CreditTransaction.objects.filter(organization=organization)
        .order_by("sequence")
        .values_list("kind", flat=True)
    ) == ["grant", "expire"]

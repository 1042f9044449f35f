from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from credits.exceptions import CreditTransactionNotFound, TransactionNotReversible
from credits.models import CreditAccount, CreditTransaction
from credits.services import (
    credit_account_settings_update,
    credit_consume,
    credit_consumption_reverse,
    credit_grant,
)
from tests.billing.factories import OrganizationFactory

pytestmark = pytest.mark.django_db
D = Decimal


def test_reverse_gives_back_to_the_grants_it_came_from_once(organization):
    a = credit_grant(organization=organization, amount=5, source="purchase", reference="pi_a").grant
    b = credit_grant(organization=organization, amount=5, source="promo").grant
    used = credit_consume(organization=organization, amount=7).transaction
    first = credit_consumption_reverse(
        organization=organization, transaction_id=used.pk, reason="failed send"
    )
    assert first.created and first.balance == D(10) and first.grant is None
    assert (first.transaction.kind, first.transaction.amount, first.transaction.reverses_id) == (
        "refund",
        D(7),
        used.pk,
    )
    a.refresh_from_db(), b.refresh_from_db()
    assert (a.remaining, b.remaining) == (D(5), D(5))
    again = credit_consumption_reverse(
        organization=organization, transaction_id=used.pk, reason="failed send"
    )
    assert not again.created and again.transaction.pk == first.transaction.pk
    assert CreditAccount.objects.get(organization=organization).balance == D(10)


def test_reverse_into_an_expired_grant_expires_again(organization, clock):
    sub = credit_grant(
        organization=organization,
        amount=5,
        source="subscription",
        expires_at=timezone.now() + timedelta(days=1),
    ).grant
    used = credit_consume(organization=organization, amount=5).transaction
    clock.shift(timedelta(days=2))
    result = credit_consumption_reverse(organization=organization, transaction_id=used.pk, reason="r")
    assert result.balance == 0
    kinds = list(
        CreditTransaction.objects.filter(organization=organization)
        .order_by("sequence")
        .values_list("kind", "amount", "grant_id")
    )
    assert kinds[-2:] == [("refund", D(5), None), ("expire", D(-5), sub.pk)]


def test_reverse_of_overdraft_since_paid_back_becomes_a_refund_grant(organization):
    credit_account_settings_update(organization=organization, overdraft_limit=10)
    credit_grant(organization=organization, amount=5, source="promo")
    used = credit_consume(organization=organization, amount=10).transaction  # 5 from promo, 5 overdraft
    credit_grant(organization=organization, amount=20, source="purchase", reference="pi_x")  # pays back 5
    result = credit_consumption_reverse(organization=organization, transaction_id=used.pk, reason="r")
    assert result.balance == D(25)
    assert (result.grant.source, result.grant.amount, result.grant.remaining, result.grant.expires_at) == (
        "refund",
        D(5),
        D(5),
        None,
    )


def test_reverse_while_in_overdraft_pays_the_debt_first(organization):
    credit_account_settings_update(organization=organization, overdraft_limit=10)
    credit_grant(organization=organization, amount=5, source="promo")
    first = credit_consume(organization=organization, amount=4).transaction
    credit_consume(organization=organization, amount=8)  # balance -7
    result = credit_consumption_reverse(organization=organization, transaction_id=first.pk, reason="r")
    assert result.balance == D(-3)


def test_only_consumptions_of_this_organization(organization):
    grant_row = credit_grant(organization=organization, amount=5).transaction
    with pytest.raises(TransactionNotReversible):
        credit_consumption_reverse(organization=organization, transaction_id=grant_row.pk, reason="r")
    other = OrganizationFactory()
    credit_grant(organization=other, amount=5)
    theirs = credit_consume(organization=other, amount=1).transaction
    with pytest.raises(CreditTransactionNotFound):
        credit_consumption_reverse(organization=organization, transaction_id=theirs.pk, reason="r")

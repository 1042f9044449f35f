from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from credits.models import CreditAccount, CreditGrant, CreditTransaction
from credits.services import credit_consume, credit_grant, credit_grants_expire, subscription_credits_grant
from credits.tasks import credit_grants_expire_task
from tests.billing.factories import OrganizationFactory

pytestmark = pytest.mark.django_db
D = Decimal


def balance(org) -> Decimal:
    return CreditAccount.objects.get(organization=org).balance


def test_expiry_boundaries_with_a_frozen_clock(organization, clock):
    ends = timezone.now() + timedelta(days=30)
    grant = credit_grant(organization=organization, amount=100, source="subscription", expires_at=ends).grant
    credit_consume(organization=organization, amount=40)

    clock.move_to(ends - timedelta(microseconds=1))
    assert credit_grants_expire() == 0
    assert balance(organization) == D(60)

    clock.move_to(ends)  # expires_at is the first instant the credits are gone
    assert credit_grants_expire() == 1
    assert balance(organization) == 0
    row = CreditTransaction.objects.get(organization=organization, kind="expire")
    assert (row.amount, row.balance_after, row.grant_id, row.created_at) == (D(-60), D(0), grant.pk, ends)
    grant.refresh_from_db()
    assert grant.remaining == 0 and grant.expired_at == ends

    clock.shift(timedelta(days=1))
    assert credit_grants_expire() == 0  # once


def test_expiry_task_covers_every_account_and_leaves_others(clock):
    soon = timezone.now() + timedelta(hours=1)
    orgs = [OrganizationFactory() for _ in range(3)]
    for org in orgs[:2]:
        credit_grant(organization=org, amount=5, source="promo", expires_at=soon)
        credit_grant(organization=org, amount=7, source="purchase", reference=f"pi_{org.pk}")
    credit_grant(organization=orgs[2], amount=9, source="promo", expires_at=soon + timedelta(days=1))
    clock.shift(timedelta(hours=2))
    assert credit_grants_expire_task.apply().get() == 2
    assert [balance(o) for o in orgs] == [D(7), D(7), D(9)]


def test_subscription_credits_once_per_invoice_and_expire_at_period_end(organization, clock):
    start = timezone.now()
    end = start + timedelta(days=30)
    first = subscription_credits_grant(
        organization=organization, invoice_id="in_1", period_start=start, period_end=end, amount=500
    )
    again = subscription_credits_grant(
        organization=organization, invoice_id="in_1", period_start=start, period_end=end, amount=500
    )
    assert first.created and not again.created
    assert (first.grant.source, first.grant.expires_at, first.grant.reference) == (
        "subscription",
        end,
        "invoice:in_1",
    )
    assert balance(organization) == D(500)
    credit_consume(organization=organization, amount=120)

    clock.move_to(end)
    nxt = subscription_credits_grant(
        organization=organization,
        invoice_id="in_2",
        period_start=end,
        period_end=end + timedelta(days=30),
        amount=500,
    )
    # The renewal's own mutation expired what was left of the previous period first.
    assert nxt.balance == D(500)
    kinds = list(
        CreditTransaction.objects.filter(organization=organization)
        .order_by("sequence")
        .values_list("kind", "amount")
    )
    assert kinds == [("grant", D(500)), ("consume", D(-120)), ("expire", D(-380)), ("grant", D(500))]
    assert (
        subscription_credits_grant(
            organization=organization, invoice_id="in_3", period_start=end, period_end=end, amount=0
        )
        is None
    )


def test_expired_grants_never_hold_credits(organization, clock):
    credit_grant(
        organization=organization, amount=5, source="promo", expires_at=timezone.now() + timedelta(seconds=5)
    )
    clock.shift(timedelta(seconds=10))
    credit_grants_expire()
    assert not CreditGrant.objects.filter(remaining__gt=0, expires_at__lte=timezone.now()).exists()

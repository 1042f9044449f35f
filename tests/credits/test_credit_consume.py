from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from config.exceptions import IdempotencyConflict, ValidationFailed
from credits.exceptions import InsufficientCredits, UnknownCreditPrice
from credits.models import CreditAccount, CreditGrant, CreditTransaction, TransactionKind
from credits.services import credit_account_settings_update, credit_consume, credit_grant
from credits.services.ledger import consume_fingerprint, request_fingerprint
from tests.credits.factories import CreditPriceFactory

pytestmark = pytest.mark.django_db

D = Decimal


def remaining(grant) -> Decimal:
    grant.refresh_from_db()
    return grant.remaining


def test_consume_takes_purchased_then_subscription_then_promo(organization):
    now = timezone.now()
    promo = credit_grant(organization=organization, amount=5, source="promo").grant
    sub = credit_grant(
        organization=organization, amount=5, source="subscription", expires_at=now + timedelta(days=9)
    ).grant
    bought = credit_grant(organization=organization, amount=5, source="purchase", reference="pi_1").grant
    result = credit_consume(organization=organization, amount="7", reason="r")
    assert result.consumed == D("7") and result.balance == D("8")
    assert (remaining(bought), remaining(sub), remaining(promo)) == (D(0), D(3), D(5))
    allocations = result.transaction.allocations
    assert allocations == [[str(bought.pk), "5"], [str(sub.pk), "2"]]


def test_soonest_expiry_first_within_a_source_and_never_expiring_last(organization):
    now = timezone.now()
    never = credit_grant(organization=organization, amount=3, source="promo").grant
    late = credit_grant(
        organization=organization, amount=3, source="promo", expires_at=now + timedelta(days=20)
    ).grant
    soon = credit_grant(
        organization=organization, amount=3, source="promo", expires_at=now + timedelta(days=2)
    ).grant
    credit_consume(organization=organization, amount=4)
    assert (remaining(soon), remaining(late), remaining(never)) == (D(0), D(2), D(3))


@override_settings(CREDITS_CONSUMPTION_ORDER=["promo", "purchase", "subscription", "manual", "refund"])
def test_the_order_is_a_setting(organization):
    bought = credit_grant(organization=organization, amount=5, source="purchase", reference="pi_2").grant
    promo = credit_grant(organization=organization, amount=5, source="promo").grant
    credit_consume(organization=organization, amount=6)
    assert (remaining(promo), remaining(bought)) == (D(0), D(4))


def test_refusal_consumes_nothing_and_says_balance_and_requirement(organization):
    credit_grant(organization=organization, amount="2.5")
    with pytest.raises(InsufficientCredits) as info:
        credit_consume(organization=organization, amount=3, idempotency_key="k1")
    assert info.value.as_body() == {
        "error": "insufficient_credits",
        "message": "This needs 3 credits; the balance is 2.5.",
        "balance": "2.5",
        "required": "3",
    }
    assert CreditAccount.objects.get(organization=organization).balance == D("2.5")
    assert not CreditTransaction.objects.filter(kind=TransactionKind.CONSUME).exists()


def test_exact_balance_can_be_consumed_to_zero(organization):
    credit_grant(organization=organization, amount=3)
    assert credit_consume(organization=organization, amount=3).balance == 0
    with pytest.raises(InsufficientCredits):
        credit_consume(organization=organization, amount="0.0001")


def test_overdraft_limit_lets_the_balance_go_negative_that_far_and_no_further(organization):
    credit_grant(organization=organization, amount=5)
    credit_account_settings_update(organization=organization, overdraft_limit=10)
    result = credit_consume(organization=organization, amount=12)
    assert result.balance == D(-7)
    assert result.transaction.allocations[0][1] == "5"  # 7 of it is overdraft
    with pytest.raises(InsufficientCredits) as info:
        credit_consume(organization=organization, amount=4)
    assert info.value.extra["available"] == "3"
    credit_consume(organization=organization, amount=3)
    assert CreditAccount.objects.get(organization=organization).balance == D(-10)


def test_a_grant_pays_the_overdraft_back_first(organization):
    credit_account_settings_update(organization=organization, overdraft_limit=10)
    credit_consume(organization=organization, amount=6)
    grant = credit_grant(organization=organization, amount=10).grant
    assert grant.remaining == D(4) and grant.amount == D(10)
    assert CreditAccount.objects.get(organization=organization).balance == D(4)


def test_event_priced_consumption(organization):
    CreditPriceFactory(event_name="SMS_SENT", credits_per_unit=D("0.75"))
    credit_grant(organization=organization, amount=10)
    result = credit_consume(organization=organization, event_name="SMS_SENT", quantity=4, reason="batch")
    assert result.consumed == D(3) and result.balance == D(7)
    row = result.transaction
    assert (row.event_name, row.quantity, row.amount) == ("SMS_SENT", D(4), D(-3))
    assert credit_consume(organization=organization, event_name="SMS_SENT").consumed == D("0.75")


def test_unknown_or_inactive_event_is_a_validation_error(organization):
    CreditPriceFactory(event_name="OLD", active=False)
    credit_grant(organization=organization, amount=10)
    with pytest.raises(UnknownCreditPrice):
        credit_consume(organization=organization, event_name="OLD")
    with pytest.raises(UnknownCreditPrice):
        credit_consume(organization=organization, event_name="NOPE")


@pytest.mark.parametrize(
    "kwargs", [{}, {"amount": 1, "event_name": "X"}, {"amount": 0}, {"amount": -1}, {"amount": "abc"}]
)
def test_bad_requests(organization, kwargs):
    with pytest.raises(ValidationFailed):
        credit_consume(organization=organization, **kwargs)


def test_same_key_same_request_is_one_effect(organization):
    credit_grant(organization=organization, amount=10)
    first = credit_consume(
        organization=organization, amount=4, reason="x", idempotency_key="abc", metadata={"a": 1}
    )
    again = credit_consume(
        organization=organization, amount="4.0", reason="x", idempotency_key="abc", metadata={"a": 1}
    )
    assert again.replayed and not first.replayed
    assert again.transaction.pk == first.transaction.pk and again.balance == D(6)
    assert CreditAccount.objects.get(organization=organization).balance == D(6)


def test_replay_still_answers_when_the_balance_no_longer_covers_it(organization):
    credit_grant(organization=organization, amount=4)
    first = credit_consume(organization=organization, amount=4, idempotency_key="all")
    again = credit_consume(organization=organization, amount=4, idempotency_key="all")
    assert again.replayed and again.transaction.pk == first.transaction.pk and again.balance == 0


def test_same_key_other_request_is_a_conflict(organization):
    credit_grant(organization=organization, amount=10)
    credit_consume(organization=organization, amount=4, idempotency_key="abc")
    with pytest.raises(IdempotencyConflict):
        credit_consume(organization=organization, amount=5, idempotency_key="abc")
    with pytest.raises(IdempotencyConflict):
        credit_grant(organization=organization, amount=4, idempotency_key="abc")
    assert CreditAccount.objects.get(organization=organization).balance == D(6)


def test_keys_are_per_organization(organization):
    from tests.billing.factories import OrganizationFactory

    other = OrganizationFactory()
    for org in (organization, other):
        credit_grant(organization=org, amount=5)
        credit_consume(organization=org, amount=1, idempotency_key="same")
    assert CreditTransaction.objects.filter(idempotency_key="same").count() == 2


def test_balance_after_chain_and_sequence(organization):
    credit_grant(organization=organization, amount=10)
    credit_consume(organization=organization, amount="1.25")
    credit_consume(organization=organization, amount="2.5")
    rows = list(CreditTransaction.objects.filter(organization=organization).order_by("sequence"))
    assert [r.sequence for r in rows] == [1, 2, 3]
    assert [r.balance_after for r in rows] == [D(10), D("8.75"), D("6.25")]


def test_inline_expiry_before_consuming(organization, clock):
    grant = credit_grant(
        organization=organization,
        amount=5,
        source="subscription",
        expires_at=timezone.now() + timedelta(hours=1),
    ).grant
    credit_grant(organization=organization, amount=2, source="promo")
    clock.shift(timedelta(hours=1))
    with pytest.raises(InsufficientCredits) as info:
        credit_consume(organization=organization, amount=3)
    assert info.value.balance == D(2)  # the expired 5 are not there to spend
    credit_consume(organization=organization, amount=2)
    assert remaining(grant) == 0
    kinds = list(
        CreditTransaction.objects.filter(organization=organization)
        .order_by("sequence")
        .values_list("kind", flat=True)
    )
    assert kinds == ["grant", "grant", "expire", "consume"]
    assert CreditGrant.objects.get(pk=grant.pk).expired_at == timezone.now()


_credits = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("9999999999999999.9999"), places=4)


@given(
    amount=st.none() | _credits,
    event_name=st.text(max_size=20),
    quantity=st.none() | _credits,
    reason=st.text(max_size=40),
    metadata=st.just({})
    | st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=3),
)
def test_the_consume_fingerprint_is_the_general_one(amount, event_name, quantity, reason, metadata):
    """`consume_fingerprint` (written directly) hashes the text `request_fingerprint` does, so a
    replay stored before it matches: any amount, quantity, name and reason (any characters)."""
    fields = {"amount": amount, "event_name": event_name, "quantity": quantity, "reason": reason}
    assert consume_fingerprint(**fields, metadata=metadata) == request_fingerprint(
        "consume", **fields, metadata=metadata
    )

from decimal import Decimal

import pytest

from config.exceptions import IdempotencyConflict
from credits.exceptions import CreditPurchaseNotFound
from credits.models import CreditAccount, CreditGrant, CreditTransaction, PurchaseKind, PurchaseStatus
from credits.services import (
    credit_consume,
    credit_purchase_create,
    credit_purchase_fulfil,
    credit_purchase_reverse,
)
from tests.credits.factories import CreditPackFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def pack(db):
    return CreditPackFactory(code="p1k", credits=D(1000), amount=1000)


def balance(org) -> Decimal:
    return CreditAccount.objects.get(organization=org).balance


def test_purchase_row_keys_the_stripe_call(organization, pack):
    purchase, created = credit_purchase_create(
        organization=organization, pack=pack, payment_method="pm_1", idempotency_key="buy-1"
    )
    assert created and purchase.status == PurchaseStatus.PENDING
    assert purchase.stripe_idempotency_key == f"purchase:{purchase.pk}"
    assert (purchase.credits, purchase.amount, purchase.currency) == (D(1000), 1000, "usd")
    same, created_again = credit_purchase_create(
        organization=organization, pack=pack, payment_method="pm_1", idempotency_key="buy-1"
    )
    assert not created_again and same.pk == purchase.pk
    with pytest.raises(IdempotencyConflict):
        credit_purchase_create(
            organization=organization, pack=pack, payment_method="pm_2", idempotency_key="buy-1"
        )


def test_the_same_purchase_webhook_five_times_grants_once(organization, pack):
    purchase, _ = credit_purchase_create(organization=organization, pack=pack)
    results = [credit_purchase_fulfil(payment_intent_id="pi_1", purchase_id=purchase.pk) for _ in range(5)]
    assert [r.granted for r in results] == [True, False, False, False, False]
    assert len({r.transaction.pk for r in results}) == 1
    assert balance(organization) == D(1000)
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.SUCCEEDED and purchase.payment_intent_id == "pi_1"
    assert CreditGrant.objects.get(organization=organization).reference == "pi_1"


def test_api_answer_payment_intent_and_checkout_in_any_order_grant_once(organization, pack):
    purchase, _ = credit_purchase_create(organization=organization, pack=pack, kind=PurchaseKind.CHECKOUT)
    # checkout.session.completed first (metadata carries our id), then the PaymentIntent event, then the API.
    credit_purchase_fulfil(payment_intent_id="pi_9", purchase_id=purchase.pk, checkout_session_id="cs_9")
    credit_purchase_fulfil(payment_intent_id="pi_9")
    credit_purchase_fulfil(payment_intent_id="pi_9", checkout_session_id="cs_9")
    assert balance(organization) == D(1000)
    assert CreditTransaction.objects.filter(organization=organization, kind="grant").count() == 1
    purchase.refresh_from_db()
    assert purchase.checkout_session_id == "cs_9"


def test_unknown_purchase(organization):
    with pytest.raises(CreditPurchaseNotFound):
        credit_purchase_fulfil(payment_intent_id="pi_unknown")


def test_refund_takes_back_only_the_unspent_part(organization, pack):
    purchase, _ = credit_purchase_create(organization=organization, pack=pack)
    credit_purchase_fulfil(payment_intent_id="pi_r", purchase_id=purchase.pk)
    credit_consume(organization=organization, amount=300)
    credit_purchase_reverse(payment_intent_id="pi_r")
    credit_purchase_reverse(payment_intent_id="pi_r")  # redelivered
    assert balance(organization) == 0
    refund = CreditTransaction.objects.get(organization=organization, kind="refund")
    assert refund.amount == D(-700)
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.REFUNDED and purchase.credits_reversed == D(700)


def test_partial_refunds_are_cumulative(organization, pack):
    purchase, _ = credit_purchase_create(organization=organization, pack=pack)
    credit_purchase_fulfil(payment_intent_id="pi_p", purchase_id=purchase.pk)
    credit_purchase_reverse(payment_intent_id="pi_p", refunded_amount=250)
    credit_purchase_reverse(payment_intent_id="pi_p", refunded_amount=250)
    assert balance(organization) == D(750)
    credit_purchase_reverse(payment_intent_id="pi_p", refunded_amount=500)
    assert balance(organization) == D(500)
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.SUCCEEDED and purchase.refunded_amount == 500


def test_dispute_before_the_success_event_still_ends_with_nothing_granted(organization, pack):
    purchase, _ = credit_purchase_create(organization=organization, pack=pack)
    purchase.payment_intent_id = "pi_d"
    purchase.save()
    credit_purchase_reverse(payment_intent_id="pi_d", reason="dispute")
    result = credit_purchase_fulfil(payment_intent_id="pi_d", purchase_id=purchase.pk)
    assert result.granted
    assert balance(organization) == 0
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.REFUNDED

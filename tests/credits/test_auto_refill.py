from decimal import Decimal

import pytest
from django.core import mail
from django.db import IntegrityError, transaction

from config.exceptions import ValidationFailed
from credits.models import AutoRefill, CreditAccount, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.services import (
    auto_refill_payment_failed,
    auto_refill_requires_action,
    auto_refill_set,
    credit_consume,
    credit_grant,
    credit_purchase_fulfil,
)
from tests.billing.factories import MembershipFactory, UserFactory
from tests.credits.factories import CreditPackFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def pack(db):
    return CreditPackFactory(code="p1k", credits=D(1000), amount=1000)


@pytest.fixture
def refill(organization, pack):
    MembershipFactory(organization=organization, role="owner", user=UserFactory(username="boss@example.com"))
    credit_grant(organization=organization, amount=100, source="purchase", reference="pi_seed")
    return auto_refill_set(
        organization=organization,
        enabled=True,
        threshold=50,
        pack=pack,
        payment_method="pm_card_visa",  # attached to the organization's customer in the emulator
        max_refills_per_day=2,
    )


def refills(org):
    return CreditPurchase.objects.filter(organization=org, kind=PurchaseKind.AUTO_REFILL)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pack": None, "amount": None}, "pack"),
        ({"amount": 10}, "pack"),  # both
        ({"payment_method": ""}, "payment_method"),
        ({"payment_method": "card_123"}, "payment_method"),
        ({"max_refills_per_day": 0}, "max_refills_per_day"),
        ({"threshold": -1}, "threshold"),
    ],
)
def test_settings_validation(organization, pack, kwargs, field):
    params = {"enabled": True, "threshold": 10, "pack": pack, "payment_method": "pm_1", **kwargs}
    with pytest.raises(ValidationFailed) as info:
        auto_refill_set(organization=organization, **params)
    assert field in info.value.extra["fields"]


def test_disabled_settings_need_no_card(organization):
    refill = auto_refill_set(organization=organization, enabled=False, threshold=0)
    assert not refill.enabled


def test_crossing_the_threshold_enqueues_one_refill_after_commit(
    organization, refill, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        credit_consume(organization=organization, amount=40)  # 60: above
    assert callbacks == [] and not refills(organization).exists()
    with django_capture_on_commit_callbacks() as callbacks:
        credit_consume(organization=organization, amount=20)  # 40: crossed
    purchase = refills(organization).get()
    assert (
        purchase.status == PurchaseStatus.PENDING
        and purchase.credits == D(1000)
        and purchase.payment_method == refill.payment_method
        and purchase.payment_method.startswith("pm_")
    )
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks() as callbacks:
        credit_consume(organization=organization, amount=5)  # still below, one already in flight
    assert callbacks == [] and refills(organization).count() == 1


def test_one_refill_in_flight_is_enforced_by_the_database(organization, refill):
    account = CreditAccount.objects.get(organization=organization)
    fields = {
        "organization": organization,
        "account": account,
        "kind": PurchaseKind.AUTO_REFILL,
        "credits": 1,
        "amount": 1,
    }
    CreditPurchase.objects.create(created_at="2026-01-01T00:00Z", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditPurchase.objects.create(
            created_at="2026-01-01T00:01Z", status=PurchaseStatus.PROCESSING, **fields
        )
    CreditPurchase.objects.create(created_at="2026-01-01T00:02Z", status=PurchaseStatus.FAILED, **fields)


def test_success_grants_and_the_next_crossing_refills_again(organization, refill):
    credit_consume(organization=organization, amount=60)
    purchase = refills(organization).get()
    credit_purchase_fulfil(payment_intent_id="pi_refill_1", purchase_id=purchase.pk)
    assert CreditAccount.objects.get(organization=organization).balance == D(1040)
    credit_consume(organization=organization, amount=1000)
    assert refills(organization).count() == 2


def test_daily_cap(organization, refill):
    for i in range(3):
        credit_consume(organization=organization, amount=60 if i == 0 else 1)
        purchase = refills(organization).order_by("-created_at").first()
        if purchase.status == PurchaseStatus.PENDING:
            credit_purchase_fulfil(payment_intent_id=f"pi_{i}", purchase_id=purchase.pk)
            credit_consume(
                organization=organization,
                amount=CreditAccount.objects.get(organization=organization).balance - 10,
            )
    assert refills(organization).count() == 2  # max_refills_per_day=2


def test_three_declines_in_a_row_turn_it_off_and_email_the_owner(organization, refill, after_commit):
    for i in range(3):
        credit_consume(organization=organization, amount=60 if i == 0 else 1)
        purchase = refills(organization).get(status=PurchaseStatus.PENDING)
        with after_commit():
            auto_refill_payment_failed(
                purchase_id=purchase.pk, decline_code="insufficient_funds", message="Declined"
            )
            auto_refill_payment_failed(
                purchase_id=purchase.pk, decline_code="insufficient_funds"
            )  # redelivered
        AutoRefill.objects.filter(pk=refill.pk).update(max_refills_per_day=10)
    state = AutoRefill.objects.get(pk=refill.pk)
    assert (
        not state.enabled
        and state.consecutive_failures == 3
        and state.last_failure_code == "insufficient_funds"
    )
    assert "3 failed payments" in state.disabled_reason
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [organization.billing_email, "boss@example.com"] and "turned off" in message.subject
    assert "insufficient_funds" in message.body and "insufficient_funds" in message.alternatives[0][0]
    credit_consume(organization=organization, amount=1)
    assert refills(organization).count() == 3  # off: no more refills


def test_a_success_resets_the_failure_count(organization, refill):
    credit_consume(organization=organization, amount=60)
    auto_refill_payment_failed(purchase_id=refills(organization).get().pk, decline_code="card_declined")
    credit_consume(organization=organization, amount=1)
    second = refills(organization).get(status=PurchaseStatus.PENDING)
    credit_purchase_fulfil(payment_intent_id="pi_ok", purchase_id=second.pk)
    assert AutoRefill.objects.get(pk=refill.pk).consecutive_failures == 0


def test_authentication_required_notifies_the_owner(organization, refill, after_commit):
    credit_consume(organization=organization, amount=60)
    purchase = refills(organization).get()
    with after_commit():
        auto_refill_requires_action(purchase_id=purchase.pk, payment_intent_id="pi_3ds")
        auto_refill_requires_action(purchase_id=purchase.pk, payment_intent_id="pi_3ds")
    purchase.refresh_from_db()
    assert purchase.status == PurchaseStatus.REQUIRES_ACTION and purchase.payment_intent_id == "pi_3ds"
    assert len(mail.outbox) == 1 and "authentication" in mail.outbox[0].subject
    # The holder completes it later: the PaymentIntent webhook grants.
    credit_purchase_fulfil(payment_intent_id="pi_3ds")
    assert CreditAccount.objects.get(organization=organization).balance == D(1040)


def test_amount_refills_are_priced_at_the_smallest_pack(organization, pack):
    CreditPackFactory(code="big", credits=D(20000), amount=16000)
    credit_grant(organization=organization, amount=10)
    auto_refill_set(
        organization=organization, enabled=True, threshold=5, amount=2500, payment_method="pm_card_visa"
    )
    credit_consume(organization=organization, amount=6)
    purchase = refills(organization).get()
    assert (purchase.credits, purchase.amount, purchase.pack_id) == (D(2500), 2500, None)

"""Auto-refill against the Stripe emulator: the consumption that crosses the threshold charges
the saved card off-session (after commit), and the credits land once."""

from decimal import Decimal as D

import pytest
from django.core import mail

from billing.services import payment_method_attach
from credits.models import AutoRefill, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.selectors import credit_summary_get
from credits.services import auto_refill_run, auto_refill_set, credit_consume, credit_grant
from tests.billing.factories import MembershipFactory
from tests.credits.factories import CreditPackFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pack(db):
    return CreditPackFactory(code="p1k", name="1,000 credits", credits=D(1000), amount=1000)


def setup_refill(org, pack, card: str) -> AutoRefill:
    saved = payment_method_attach(organization=org, payment_method_id=card).id
    credit_grant(organization=org, amount=100, reason="start")
    return auto_refill_set(
        organization=org, enabled=True, threshold=50, pack=pack, payment_method=saved, max_refills_per_day=5
    )


def refills(org):
    return CreditPurchase.objects.filter(organization=org, kind=PurchaseKind.AUTO_REFILL).order_by(
        "created_at"
    )


def test_crossing_the_threshold_charges_once_and_grants(billing_org, pack, stripe_emulator, after_commit):
    setup_refill(billing_org, pack, "pm_card_visa")
    with after_commit():
        credit_consume(organization=billing_org, amount=60, reason="x", idempotency_key="c1")
    assert credit_summary_get(organization=billing_org).balance == D(1040)
    refill = refills(billing_org).get()
    assert refill.status == PurchaseStatus.SUCCEEDED
    intents = stripe_emulator.objects("payment_intent")
    assert [(i["amount"], i["status"]) for i in intents] == [(1000, "succeeded")]
    assert intents[0]["metadata"]["purchase_id"] == str(refill.pk)


def test_a_rerun_after_the_stripe_call_charges_once_and_grants_once(billing_org, pack, stripe_emulator):
    """The worker died after Stripe answered and before anything was saved: the task runs again."""
    from credits.services import purchase_payment_intent_create

    setup_refill(billing_org, pack, "pm_card_visa")
    credit_consume(organization=billing_org, amount=60, reason="x", idempotency_key="c1")  # enqueued, not run
    refill = refills(billing_org).get()
    CreditPurchase.objects.filter(pk=refill.pk).update(status=PurchaseStatus.PROCESSING)
    first = purchase_payment_intent_create(purchase=refill)  # ... and then the worker died
    auto_refill_run(purchase_id=refill.pk)  # the task, delivered again
    auto_refill_run(purchase_id=refill.pk)  # and once more, for good measure
    assert [i["id"] for i in stripe_emulator.objects("payment_intent")] == [first["id"]]
    assert credit_summary_get(organization=billing_org).balance == D(1040)
    assert refills(billing_org).get().payment_intent_id == first["id"]


def test_three_declines_in_a_row_turn_it_off_and_email_the_owner(
    billing_org, billing_owner, pack, after_commit
):
    setup_refill(billing_org, pack, "pm_card_chargeCustomerFail")
    for n in range(3):
        with after_commit():
            credit_consume(
                organization=billing_org, amount=1 if n else 60, reason="x", idempotency_key=f"c{n}"
            )
    refill = AutoRefill.objects.get(account__organization=billing_org)
    assert refill.enabled is False and refill.consecutive_failures == 3
    assert [p.status for p in refills(billing_org)] == [PurchaseStatus.FAILED] * 3
    assert credit_summary_get(organization=billing_org).balance == D(100 - 62)
    assert any(billing_owner.email in m.to for m in mail.outbox)


def test_authentication_required_notifies_the_owner(billing_org, billing_owner, pack, after_commit):
    MembershipFactory(organization=billing_org, role="owner")
    setup_refill(billing_org, pack, "pm_card_authenticationRequired")
    with after_commit():
        credit_consume(organization=billing_org, amount=60, reason="x", idempotency_key="c1")
    assert refills(billing_org).get().status == PurchaseStatus.REQUIRES_ACTION
    assert credit_summary_get(organization=billing_org).balance == D(40)
    assert len(mail.outbox) == 1 and billing_owner.email in mail.outbox[0].to


def test_a_rerun_a_day_later_finds_the_charge_instead_of_charging_again(billing_org, pack, stripe_emulator):
    """Stripe forgets idempotency keys after 24 hours; the rerun looks the charge up by purchase id."""
    import stripe

    from tests.stripe_helpers import STRIPE_KEY

    refill_settings = setup_refill(billing_org, pack, "pm_card_visa")
    credit_consume(organization=billing_org, amount=60, reason="x", idempotency_key="c1")  # enqueued, not run
    refill = refills(billing_org).get()
    earlier = stripe.PaymentIntent.create(  # the charge made a day ago, under a key Stripe has forgotten
        amount=1000,
        currency="usd",
        customer=stripe_emulator.objects("customer")[0]["id"],
        payment_method=refill_settings.payment_method,
        confirm=True,
        off_session=True,
        metadata={"purchase_id": str(refill.pk)},
        idempotency_key="forgotten",
        **STRIPE_KEY,
    )
    from datetime import timedelta

    from django.utils import timezone

    CreditPurchase.objects.filter(pk=refill.pk).update(
        status=PurchaseStatus.PROCESSING, created_at=timezone.now() - timedelta(days=1)
    )
    auto_refill_run(purchase_id=refill.pk)
    assert [i["id"] for i in stripe_emulator.objects("payment_intent")] == [earlier.id]
    assert refills(billing_org).get().payment_intent_id == earlier.id
    assert credit_summary_get(organization=billing_org).balance == D(1040)

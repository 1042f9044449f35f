"""A process that dies between the commit and the enqueue (`transaction.on_commit`) loses the
task; the outbox (item 29) covers only an unreachable broker. The sweeps on beat recover what
moves money or state: here the auto-refill charge (a lost one used to block every later refill
of the account, one being "in flight"). The row is committed without its task, then the sweep
runs: one PaymentIntent, one grant, however many times the sweep runs."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from billing.services import payment_method_attach
from credits.models import CreditGrant, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.services import auto_refill_set, credit_consume, credit_grant
from credits.tasks import auto_refill_sweep_task
from tests.credits.factories import CreditPackFactory

from .helpers import balance, ledger_sum

pytestmark = pytest.mark.django_db

PAYMENT_INTENTS = "/v1/payment_intents"


def test_the_sweep_is_scheduled():
    task = PeriodicTask.objects.get(name="credits: auto-refills whose task was lost")
    assert task.task == "credits.auto_refill_sweep_task" and task.enabled
    assert (task.interval.every, task.interval.period) == (2, "minutes")


def test_an_auto_refill_whose_enqueue_was_lost_is_charged_once_by_the_sweep(
    billing_org, stripe_emulator, celery_eager, django_capture_on_commit_callbacks
):
    pack = CreditPackFactory(code="r1k", credits=Decimal(1000), amount=1000)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    credit_grant(organization=billing_org, amount=100)
    auto_refill_set(organization=billing_org, enabled=True, threshold=50, pack=pack, payment_method=card)
    # The crossing commits its refill row; the process dies before on_commit enqueues the task.
    with django_capture_on_commit_callbacks(execute=False) as lost:
        credit_consume(organization=billing_org, amount=60, idempotency_key="cross")
    assert any("auto_refill_task" in repr(c.__code__.co_names) for c in lost)
    refill = CreditPurchase.objects.get(organization=billing_org, kind=PurchaseKind.AUTO_REFILL)
    assert refill.status == PurchaseStatus.PENDING
    # A fresh row is not the sweep's: its task may be on its way.
    assert auto_refill_sweep_task.apply().get() == 0
    # Later the account crosses again: no second refill while this one is "in flight".
    credit_consume(organization=billing_org, amount=10, idempotency_key="again")
    assert CreditPurchase.objects.filter(organization=billing_org, kind=PurchaseKind.AUTO_REFILL).count() == 1

    CreditPurchase.objects.filter(pk=refill.pk).update(updated_at=timezone.now() - timedelta(minutes=6))
    with django_capture_on_commit_callbacks(execute=True):
        assert auto_refill_sweep_task.apply().get() == 1
    refill.refresh_from_db()
    assert refill.status == PurchaseStatus.SUCCEEDED
    assert len([e for e in stripe_emulator.request_log if e["path"] == PAYMENT_INTENTS]) == 1
    assert CreditGrant.objects.filter(organization=billing_org, source="purchase").count() == 1
    assert balance(billing_org) == Decimal(1030) == ledger_sum(billing_org)

    # Swept again (a second beat, or the lost task turning up after all): nothing more.
    CreditPurchase.objects.filter(pk=refill.pk).update(updated_at=timezone.now() - timedelta(minutes=6))
    with django_capture_on_commit_callbacks(execute=True):
        assert auto_refill_sweep_task.apply().get() == 0
        from credits.tasks import auto_refill_task

        auto_refill_task.apply(args=[str(refill.pk)])
    assert len(stripe_emulator.objects("payment_intent")) == 1
    assert CreditGrant.objects.filter(organization=billing_org, source="purchase").count() == 1
    assert balance(billing_org) == Decimal(1030)


def test_a_processing_refill_older_than_stripes_key_is_left_to_reconcile(
    billing_org, stripe_emulator, celery_eager, django_capture_on_commit_callbacks
):
    """A refill that may have reached Stripe more than 23 hours ago is not charged again by the
    sweep (Stripe forgets the key after 24 hours: a new PaymentIntent could charge twice);
    `reconcile` reports it as stuck."""
    pack = CreditPackFactory(code="r1k", credits=Decimal(1000), amount=1000)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    credit_grant(organization=billing_org, amount=100)
    auto_refill_set(organization=billing_org, enabled=True, threshold=50, pack=pack, payment_method=card)
    with django_capture_on_commit_callbacks(execute=False):
        credit_consume(organization=billing_org, amount=60, idempotency_key="cross")
    CreditPurchase.objects.filter(organization=billing_org, kind=PurchaseKind.AUTO_REFILL).update(
        status=PurchaseStatus.PROCESSING, updated_at=timezone.now() - timedelta(hours=30)
    )
    assert auto_refill_sweep_task.apply().get() == 0
    assert stripe_emulator.objects("payment_intent") == []

"""Item 25: kill -9 of a worker after the Stripe call and before commit.

The auto-refill task on a real Celery worker, against the emulator server: the worker is
killed after Stripe carried out the charge and before it answered; the task is delivered again
to a new worker; Stripe was asked for one PaymentIntent and the credits land once."""

from decimal import Decimal as D

import pytest
import requests

from billing.services import organization_create, payment_method_attach, user_get_or_create
from credits.models import CreditGrant, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.selectors import credit_summary_get
from credits.services import auto_refill_set, credit_consume, credit_grant
from tests.credits.factories import CreditPackFactory
from tests.processes import celery_worker, stop_process, stripe_emulator_server, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_refill_worker_killed_after_the_stripe_call_charges_once(tmp_path, settings):
    with stripe_emulator_server(tmp_path) as stripe_url:
        env = {
            "STRIPE_API_HOST": stripe_url,
            "CELERY_VISIBILITY_TIMEOUT": "3",
            "CELERY_UNACKED_RESTORE_INTERVAL": "1",
            # longer than the hang: the first worker is still waiting on Stripe when it is killed,
            # however slowly the test gets to the kill (with the default 8 s its client would give
            # up, retry and could settle the purchase as failed first)
            "STRIPE_TIMEOUT_SECONDS": "120",
        }
        owner, _ = user_get_or_create(email="boss@refill.test")
        org = organization_create(name="Refill Co", billing_email="ap@refill.test", owner=owner)
        pack = CreditPackFactory(code="p1k", credits=D(1000), amount=1000)
        card = payment_method_attach(organization=org, payment_method_id="pm_card_visa").id
        credit_grant(organization=org, amount=100, reason="start")
        auto_refill_set(organization=org, enabled=True, threshold=50, pack=pack, payment_method=card)

        def intents_created() -> int:
            answer = requests.get(
                f"{stripe_url}/_emulator/requests",
                params={"method": "POST", "path": "/v1/payment_intents"},
                timeout=5,
            )
            return answer.json()["count"]

        # Stripe will carry out the next PaymentIntent creation, then not answer for a minute.
        requests.post(
            f"{stripe_url}/_emulator/faults",
            json={
                "method": "POST",
                "path": "/v1/payment_intents",
                "hang": 60,
                "processed": True,
                "times": 1,
            },
            timeout=5,
        ).raise_for_status()

        with celery_worker(log_path=tmp_path / "worker1.log", **env) as first:
            credit_consume(organization=org, amount=60, reason="crosses the threshold", idempotency_key="c1")
            wait_until(lambda: intents_created() == 1, timeout=60, what="the charge to reach Stripe")
            stop_process(first, sig=9)  # killed while waiting for Stripe's answer
        refill = CreditPurchase.objects.get(kind=PurchaseKind.AUTO_REFILL)
        assert refill.status == PurchaseStatus.PROCESSING and refill.grant_id is None

        with celery_worker(log_path=tmp_path / "worker2.log", **env):
            wait_until(
                lambda: CreditPurchase.objects.get(pk=refill.pk).status == PurchaseStatus.SUCCEEDED,
                timeout=90,
                what="the redelivered task to finish the refill",
            )

        assert intents_created() == 1  # the rerun was answered from the idempotency key
        stripe_intents = requests.get(
            f"{stripe_url}/v1/payment_intents", auth=(settings.STRIPE_SECRET_KEY, ""), timeout=5
        ).json()["data"]
        assert len(stripe_intents) == 1 and stripe_intents[0]["status"] == "succeeded"
        assert CreditGrant.objects.filter(account__organization=org, source="purchase").count() == 1
        assert credit_summary_get(organization=org).balance == D(1040)
        assert CreditPurchase.objects.get(pk=refill.pk).payment_intent_id == stripe_intents[0]["id"]

"""Item 28: a task redelivered after the visibility timeout while its first copy still runs
(Stripe slow to answer a charge): the copy does nothing -- it does not call Stripe, it comes back
later -- and the first copy settles the refill. A real Celery worker (two processes) on Redis with
a two-second visibility timeout, against the emulator server."""

from decimal import Decimal as D

import pytest
import requests

from billing.services import organization_create, payment_method_attach, user_get_or_create
from credits.models import CreditGrant, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.selectors import credit_summary_get
from credits.services import auto_refill_set, credit_consume, credit_grant
from tests.credits.factories import CreditPackFactory
from tests.processes import celery_worker, stripe_emulator_server, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_copy_redelivered_while_the_first_runs_does_nothing(tmp_path, settings):
    with stripe_emulator_server(tmp_path) as stripe_url:
        env = {
            "STRIPE_API_HOST": stripe_url,
            "CELERY_VISIBILITY_TIMEOUT": "2",
            "CELERY_UNACKED_RESTORE_INTERVAL": "1",
            "TASK_LEASE_RETRY_SECONDS": "60",
            # longer than the hang: otherwise stripe-python's own timeout retry (same idempotency
            # key) is a second request, and the count below could not tell it from the copy's
            "STRIPE_TIMEOUT_SECONDS": "60",
        }
        owner, _ = user_get_or_create(email="boss@slow.test")
        org = organization_create(name="Slow Co", billing_email="ap@slow.test", owner=owner)
        pack = CreditPackFactory(code="s1k", credits=D(1000), amount=1000)
        card = payment_method_attach(organization=org, payment_method_id="pm_card_visa").id
        credit_grant(organization=org, amount=100, reason="start")
        auto_refill_set(organization=org, enabled=True, threshold=50, pack=pack, payment_method=card)

        def intent_requests() -> int:  # every request, idempotent replays included
            answer = requests.get(
                f"{stripe_url}/_emulator/requests",
                params={"method": "POST", "path": "/v1/payment_intents", "include_replays": "1"},
                timeout=5,
            )
            return answer.json()["count"]

        # Stripe takes 20 s to answer the charge: 10 visibility timeouts, so that on a loaded machine
        # too the copy is redelivered and tries the lease while the first copy still waits.
        requests.post(
            f"{stripe_url}/_emulator/faults",
            json={"method": "POST", "path": "/v1/payment_intents", "hang": 20, "processed": True, "times": 1},
            timeout=5,
        ).raise_for_status()
        log = tmp_path / "worker.log"
        with celery_worker(concurrency=2, log_path=log, **env):
            credit_consume(organization=org, amount=60, reason="crosses the threshold", idempotency_key="c1")
            wait_until(
                lambda: (
                    log.read_text().count("auto_refill_task[") >= 2
                    and log.read_text().count("] received") >= 2
                ),
                timeout=60,
                what="the message to be delivered a second time while the first copy waits on Stripe",
            )
            wait_until(
                lambda: (
                    CreditPurchase.objects.get(kind=PurchaseKind.AUTO_REFILL).status
                    == PurchaseStatus.SUCCEEDED
                ),
                timeout=120,
                what="the first copy to settle the refill",
            )
            assert intent_requests() == 1  # the copy never reached Stripe
            assert "another copy is running" in log.read_text()
        assert "Task credits.auto_refill_task" in log.read_text()
        stripe_intents = requests.get(
            f"{stripe_url}/v1/payment_intents", auth=(settings.STRIPE_SECRET_KEY, ""), timeout=5
        ).json()["data"]
        assert len(stripe_intents) == 1 and stripe_intents[0]["status"] == "succeeded"
        assert CreditGrant.objects.filter(account__organization=org, source="purchase").count() == 1
        assert credit_summary_get(organization=org).balance == D(1040)

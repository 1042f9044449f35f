"""Item 11: `checkout.session.completed` and `invoice.paid` for one payment (a subscription
bought on a Checkout page) grant the period's credits once, whichever comes first and however
often each arrives."""

import pytest
from django.utils import timezone

from billing.models import Organization
from credits.models import CreditGrant
from tests.stripe_helpers import post

from .helpers import balance, ledger_sum

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("invoice_first", [True, False])
def test_one_payment_two_events_one_grant(
    invoice_first,
    recorder,
    webhooks,
    client,
    billing_client,
    billing_org,
    stripe_emulator,
    django_capture_on_commit_callbacks,
):
    Organization.objects.filter(pk=billing_org.pk).update(trial_used_at=timezone.now())  # paid at once
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.pk}/checkout-sessions",
        {
            "kind": "subscription",
            "plan": "starter",
            "interval": "month",
            "success_url": "http://localhost/ok",
            "cancel_url": "http://localhost/no",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    session_id = response.json()["id"]
    assert stripe_emulator.checkout_submit(session_id, "success")["status"] == "complete"
    stripe_emulator.deliver_webhooks()
    completed = recorder.of_type("checkout.session.completed")
    paid = recorder.of_type("invoice.paid")
    assert len(completed) == 1 and len(paid) == 1
    order = [*paid, *completed] if invoice_first else [*completed, *paid]
    rest = [d for d in recorder.sent if d not in order]
    for delivery in [*order, *rest, *order]:  # and each of the two once more
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, delivery).status_code == 200
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.plan.code == "starter"
    grants = CreditGrant.objects.filter(organization=billing_org, source="subscription")
    assert grants.count() == 1, list(grants.values("reference", "amount"))
    assert grants.get().amount == org.plan.included_credits
    assert balance(billing_org) == org.plan.included_credits == ledger_sum(billing_org)

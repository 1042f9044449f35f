"""Credit purchases against the Stripe emulator: off-session charges, webhooks, refunds."""

from decimal import Decimal as D

import pytest
import stripe

from credits.models import CreditGrant, CreditPurchase, PurchaseStatus
from credits.selectors import credit_summary_get
from credits.services import credit_consume
from tests.credits.factories import CreditPackFactory
from tests.stripe_helpers import post

pytestmark = pytest.mark.django_db

KEY = {"api_key": "sk_test_" + "x" * 24}


@pytest.fixture
def pack(db):
    return CreditPackFactory(code="p1k", name="1,000 credits", credits=D(1000), amount=1000)


def purchase(client, org, **body):
    payload = {"pack": "p1k", "payment_method": "pm_card_visa", "idempotency_key": "buy-1", **body}
    return client.post(f"/api/v1/organizations/{org.id}/credits/purchase", payload, format="json")


def balance(org) -> D:
    return credit_summary_get(organization=org).balance


def test_purchase_charges_once_and_grants_once(billing_client, billing_org, pack, stripe_emulator):
    response = purchase(billing_client, billing_org)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (
        body["status"] == "succeeded" and body["transaction_id"] and body["payment_intent"].startswith("pi_")
    )
    assert body["credits"] == "1000" and body["balance"] == "1000"
    intents = stripe_emulator.objects("payment_intent")
    assert [(i["amount"], i["status"], i["metadata"]["purchase_id"]) for i in intents] == [
        (1000, "succeeded", body["purchase_id"])
    ]
    keys = [r["idempotency_key"] for r in stripe_emulator.request_log if r["path"] == "/v1/payment_intents"]
    assert keys == [f"purchase:{body['purchase_id']}"]

    again = purchase(billing_client, billing_org)
    assert again.status_code == 200 and again.json()["purchase_id"] == body["purchase_id"]
    assert again.json()["transaction_id"] == body["transaction_id"]
    assert len(stripe_emulator.objects("payment_intent")) == 1
    assert balance(billing_org) == D(1000)

    conflict = purchase(billing_client, billing_org, pack="other")
    assert conflict.status_code in (400, 409)
    CreditPackFactory(code="other", credits=D(5000), amount=4500)
    conflict = purchase(billing_client, billing_org, pack="other")
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_conflict"


def test_declined_purchase_is_402_and_grants_nothing(billing_client, billing_org, pack, stripe_emulator):
    response = purchase(billing_client, billing_org, payment_method="pm_card_chargeCustomerFail")
    assert response.status_code == 402, response.content
    assert response.json()["error"] == "payment_failed" and response.json()["decline_code"]
    assert balance(billing_org) == 0
    assert CreditPurchase.objects.get().status == PurchaseStatus.FAILED
    replay = purchase(billing_client, billing_org, payment_method="pm_card_chargeCustomerFail")
    assert replay.status_code == 402
    assert len(stripe_emulator.objects("payment_intent")) <= 1


def test_unknown_pack_is_400(billing_client, billing_org, pack):
    response = purchase(billing_client, billing_org, pack="nope")
    assert response.status_code == 400 and "pack" in response.json()["fields"]


def test_purchase_webhooks_five_times_grant_once(
    recorder, client, billing_client, billing_org, pack, stripe_emulator, django_capture_on_commit_callbacks
):
    purchase(billing_client, billing_org)
    stripe_emulator.deliver_webhooks()
    succeeded = recorder.of_type("payment_intent.succeeded")
    assert succeeded
    for _ in range(5):
        for delivery in succeeded + recorder.of_type("charge.succeeded"):
            with django_capture_on_commit_callbacks(execute=True):
                assert post(client, delivery).status_code == 200
    assert CreditGrant.objects.filter(account__organization=billing_org).count() == 1
    assert balance(billing_org) == D(1000)


def test_authentication_required_then_the_webhook_grants(
    webhooks, billing_client, billing_org, pack, stripe_emulator
):
    response = purchase(billing_client, billing_org, payment_method="pm_card_authenticationRequired")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "requires_action" and body["transaction_id"] is None
    assert balance(billing_org) == 0
    # The card holder comes back on-session, confirms, and passes the bank's check.
    stripe.PaymentIntent.confirm(body["payment_intent"], **KEY)
    stripe_emulator.complete_authentication(body["payment_intent"], succeed=True)
    webhooks.deliver()
    assert balance(billing_org) == D(1000)
    assert CreditPurchase.objects.get().status == PurchaseStatus.SUCCEEDED


def test_refund_takes_back_the_unspent_part(webhooks, billing_client, billing_org, pack, stripe_emulator):
    intent = purchase(billing_client, billing_org).json()["payment_intent"]
    credit_consume(organization=billing_org, amount=300, reason="used", idempotency_key="use-1")
    stripe.Refund.create(payment_intent=intent, amount=500, **KEY)  # half the money back
    webhooks.deliver()
    assert balance(billing_org) == D(200)  # 500 credits taken back of the 700 left
    stripe.Refund.create(payment_intent=intent, **KEY)  # the rest
    webhooks.deliver()
    webhooks.deliver(retry_now=True)
    assert balance(billing_org) == D(0)
    assert CreditPurchase.objects.get().status == PurchaseStatus.REFUNDED


def test_paid_subscription_invoice_grants_the_plan_credits_once(
    webhooks, billing_org, stripe_emulator, django_capture_on_commit_callbacks
):
    from billing.services import subscription_create

    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(
            organization=billing_org,
            plan="starter",
            interval="month",
            payment_method="pm_card_visa",
            trial_days=0,
        )
    webhooks.deliver()
    grants = CreditGrant.objects.filter(account__organization=billing_org, source="subscription")
    assert [g.amount for g in grants] == [D(1000)]
    invoice = stripe_emulator.objects("invoice")[0]
    line_end = invoice["lines"]["data"][0]["period"]["end"]
    assert int(grants[0].expires_at.timestamp()) == line_end
    from credits.services import subscription_credits_for_invoice

    assert subscription_credits_for_invoice(invoice_id=invoice["id"]) is True
    assert grants.count() == 1


def test_catch_up_grants_periods_the_webhooks_missed(billing_org, stripe_emulator):
    from billing.services import subscription_create
    from credits.services import subscription_credits_catch_up

    subscription_create(
        organization=billing_org,
        plan="professional",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    assert balance(billing_org) == 0  # no webhook was delivered
    assert subscription_credits_catch_up() == 1
    assert balance(billing_org) == D(5000)
    assert subscription_credits_catch_up() == 0


def test_checkout_for_a_pack_grants_once(
    billing_client, billing_org, pack, stripe_emulator, recorder, client, django_capture_on_commit_callbacks
):
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/checkout-sessions",
        {
            "kind": "credits",
            "pack": "p1k",
            "success_url": "http://localhost/ok",
            "cancel_url": "http://localhost/no",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    session_id = response.json()["id"]
    assert stripe_emulator.get(session_id)["mode"] == "payment"
    assert stripe_emulator.checkout_submit(session_id, "decline")["status"] == "declined"
    assert stripe_emulator.checkout_submit(session_id, "success")["status"] == "complete"
    stripe_emulator.deliver_webhooks()
    completed = recorder.of_type("checkout.session.completed")
    succeeded = recorder.of_type("payment_intent.succeeded")
    assert completed and succeeded
    # Whichever arrives first, however often: one grant.
    for delivery in [*completed, *succeeded, *completed, *succeeded, *completed]:
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, delivery).status_code == 200
    assert balance(billing_org) == D(1000)
    purchase_row = CreditPurchase.objects.get()
    assert purchase_row.status == PurchaseStatus.SUCCEEDED and purchase_row.checkout_session_id == session_id


def test_a_dispute_takes_back_the_unspent_credits(
    webhooks, billing_client, billing_org, pack, stripe_emulator
):
    intent = purchase(billing_client, billing_org).json()["payment_intent"]
    credit_consume(organization=billing_org, amount=250, reason="used", idempotency_key="use-1")
    charge = stripe_emulator.get(intent)["latest_charge"]
    stripe_emulator.create_dispute(charge if isinstance(charge, str) else charge["id"])
    webhooks.deliver()
    assert balance(billing_org) == D(0)
    rows = CreditGrant.objects.get(account__organization=billing_org).transactions.values_list(
        "kind", "amount"
    )
    assert ("refund", D(-750)) in [(k, a) for k, a in rows]

"""`GET /subscription/upcoming-invoice` (Stripe's invoice preview, as is or after a plan change),
`PATCH /subscription` with its `proration_date`, and the payment-method rules the pages rely on:
the last card of a paying subscription stays, a card saved through Checkout in setup mode is
recorded by the webhook."""

import pytest
import stripe
from djstripe.models import PaymentMethod

from billing.models import PaymentMethodOwner
from billing.selectors import organization_customer_get
from billing.services import payment_method_attach, subscription_create

pytestmark = pytest.mark.django_db

KEY = "sk_test_" + "x" * 24


def url(org, suffix=""):
    return f"/api/v1/organizations/{org.id}{suffix}"


@pytest.fixture
def subscribed(billing_org, stripe_emulator):
    billing_org.trial_used_at = billing_org.created_at
    billing_org.save(update_fields=["trial_used_at"])
    subscription_create(
        organization=billing_org, plan="starter", interval="month", payment_method="pm_card_visa"
    )
    stripe_emulator.advance(days=10)
    stripe_emulator.clock.freeze()
    return billing_org


def test_upcoming_invoice_as_is_and_after_a_change(billing_client, subscribed, billing_member_client):
    org = subscribed
    upcoming = billing_client.get(url(org, "/subscription/upcoming-invoice")).json()
    assert (
        upcoming["plan"] == "starter" and upcoming["amount_due"] == 2900 and upcoming["proration_amount"] == 0
    )
    assert upcoming["proration_date"] is None and len(upcoming["lines"]) == 1

    preview = billing_member_client.get(
        url(org, "/subscription/upcoming-invoice"), {"plan": "professional", "interval": "month"}
    ).json()
    prorations = [line["amount"] for line in preview["lines"] if line["proration"]]
    assert len(prorations) == 2 and preview["proration_amount"] == sum(prorations) > 0
    assert preview["plan"] == "professional" and preview["proration_date"]
    # Nothing changed by asking.
    assert (
        stripe.InvoiceItem.list(
            api_key=KEY, customer=organization_customer_get(organization=org).id, pending=True
        ).data
        == []
    )

    changed = billing_client.patch(
        url(org, "/subscription"),
        {"plan": "professional", "interval": "month", "proration_date": preview["proration_date"]},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["plan"] == "professional"
    pending = stripe.InvoiceItem.list(
        api_key=KEY, customer=organization_customer_get(organization=org).id, pending=True
    )
    assert sorted(ii.amount for ii in pending.data) == sorted(prorations)


def test_upcoming_invoice_refusals(billing_client, billing_org, subscribed):
    org = subscribed
    same = billing_client.get(
        url(org, "/subscription/upcoming-invoice"), {"plan": "starter", "interval": "month"}
    )
    assert same.status_code == 400 and same.json()["error"] == "validation_error"
    unknown = billing_client.get(url(org, "/subscription/upcoming-invoice"), {"plan": "gold"})
    assert unknown.status_code == 400 and "plan" in unknown.json()["fields"]
    bad = billing_client.get(url(org, "/subscription/upcoming-invoice"), {"interval": "week"})
    assert bad.status_code == 400
    stale = billing_client.patch(
        url(org, "/subscription"),
        {"plan": "professional", "proration_date": "2001-01-01T00:00:00Z"},
        format="json",
    )
    assert stale.status_code == 400 and "proration_date" in stale.json()["fields"]
    org.refresh_from_db()
    assert org.plan.code == "starter"


def test_no_subscription_has_no_upcoming_invoice(billing_client, billing_org):
    response = billing_client.get(url(billing_org, "/subscription/upcoming-invoice"))
    assert response.status_code == 200
    body = response.json()
    assert (body["plan"], body["amount_due"], body["lines"], body["next_payment_attempt"]) == (
        "free",
        0,
        [],
        None,
    )
    preview = billing_client.get(url(billing_org, "/subscription/upcoming-invoice"), {"plan": "business"})
    assert preview.status_code == 404


def test_last_card_of_a_paying_subscription_cannot_be_removed(billing_client, subscribed):
    org = subscribed
    card = PaymentMethod.objects.get(customer__subscriber=org)
    refused = billing_client.delete(url(org, f"/payment-methods/{card.id}"))
    assert refused.status_code == 409 and refused.json()["error"] == "payment_method_required"
    assert PaymentMethod.objects.filter(id=card.id, customer__isnull=False).exists()
    # With a second card it goes, and the other card becomes the default.
    other = payment_method_attach(organization=org, payment_method_id="pm_card_mastercard")
    assert billing_client.delete(url(org, f"/payment-methods/{card.id}")).status_code == 204
    listed = billing_client.get(url(org, "/payment-methods")).json()
    assert [(m["id"], m["is_default"]) for m in listed] == [(other.id, True)]
    # Once the subscription ends at the period end, its last card may go too.
    billing_client.post(url(org, "/subscription/cancel"), {"immediately": False}, format="json")
    assert billing_client.delete(url(org, f"/payment-methods/{other.id}")).status_code == 204


def test_checkout_setup_session_and_the_webhook_record_the_card(
    billing_client, billing_org, stripe_emulator, webhooks
):
    response = billing_client.post(
        url(billing_org, "/checkout-sessions"),
        {
            "kind": "payment_method",
            "success_url": "http://localhost/ok",
            "cancel_url": "http://localhost/no",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    session_id = response.json()["id"]
    assert stripe_emulator.get(session_id)["mode"] == "setup"
    stripe_emulator.checkout_submit(session_id, "pm_card_amex")
    webhooks.deliver()
    listed = billing_client.get(url(billing_org, "/payment-methods")).json()
    assert [(m["brand"], m["is_default"]) for m in listed] == [("amex", True)]
    assert PaymentMethodOwner.objects.filter(
        payment_method_id=listed[0]["id"], organization=billing_org
    ).exists()


@pytest.mark.parametrize(
    ("status", "answer", "code"), [(400, 502, "stripe_error"), (500, 503, "stripe_unavailable")]
)
def test_upcoming_invoice_answers_stripe_errors_as_the_schema_documents(
    billing_client, subscribed, stripe_emulator, client, status, answer, code
):
    stripe_emulator.faults.add(method="POST", path="/v1/invoices/create_preview", status=status, times=None)
    response = billing_client.get(url(subscribed, "/subscription/upcoming-invoice"))
    assert response.status_code == answer and response.json()["error"] == code
    schema = client.get("/api/schema/?format=json").json()
    documented = schema["paths"]["/api/v1/organizations/{org}/subscription/upcoming-invoice"]["get"][
        "responses"
    ]
    assert str(answer) in documented and code in documented[str(answer)]["description"]

import pytest

from billing.models import Organization
from billing.selectors import feature_enabled, organization_plan_get, plan_limit

pytestmark = pytest.mark.django_db


def sub_url(org, suffix=""):
    return f"/api/v1/organizations/{org.id}/subscription{suffix}"


def subscribe(client, org, **body):
    payload = {
        "plan": "starter",
        "interval": "month",
        "payment_method": "pm_card_visa",
        "trial_days": 0,
        **body,
    }
    return client.post(sub_url(org), {k: v for k, v in payload.items() if v is not None}, format="json")


def test_free_plan_needs_no_subscription(billing_client, billing_org):
    body = billing_client.get(sub_url(billing_org)).json()
    assert body == {
        "plan": "free",
        "interval": None,
        "status": "active",
        "trial_end": None,
        "current_period_start": None,
        "current_period_end": None,
        "cancel_at_period_end": False,
        "stripe_id": None,
        "pay_url": None,
    }
    assert organization_plan_get(billing_org).code == "free"
    assert plan_limit(billing_org, "SMS_SENT") == 50
    assert feature_enabled(billing_org, "api_access") is False


def test_create_paid_subscription(billing_client, billing_org, stripe_emulator):
    response = subscribe(billing_client, billing_org)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["plan"] == "starter" and body["interval"] == "month" and body["status"] == "active"
    assert body["stripe_id"].startswith("sub_")
    assert body["current_period_end"] > body["current_period_start"]
    org = Organization.objects.get(pk=billing_org.pk)
    assert organization_plan_get(org).code == "starter"
    assert plan_limit(org, "SMS_SENT") == 1000 and feature_enabled(org, "api_access")
    invoices = stripe_emulator.objects("invoice")
    assert [(i["status"], i["amount_paid"]) for i in invoices] == [("paid", 2900)]
    detail = billing_client.get(f"/api/v1/organizations/{billing_org.id}").json()
    assert (detail["plan"], detail["subscription_status"]) == ("starter", "active")


def test_second_subscription_is_409(billing_client, billing_org):
    assert subscribe(billing_client, billing_org).status_code == 201
    response = subscribe(billing_client, billing_org, plan="business")
    assert response.status_code == 409 and response.json()["error"] == "subscription_exists"


def test_unknown_plan_is_400(billing_client, billing_org):
    response = subscribe(billing_client, billing_org, plan="platinum")
    assert response.status_code == 400
    assert response.json()["error"] == "validation_error" and "plan" in response.json()["fields"]


def test_declined_first_payment_is_402_and_leaves_the_free_plan(billing_client, billing_org, stripe_emulator):
    response = subscribe(billing_client, billing_org, payment_method="pm_card_chargeCustomerFail")
    assert response.status_code == 402, response.content
    assert response.json()["error"] == "payment_failed" and response.json()["decline_code"]
    assert billing_client.get(sub_url(billing_org)).json()["plan"] == "free"
    assert [s for s in stripe_emulator.objects("subscription") if s["status"] != "incomplete_expired"] == []


def test_trial_uses_the_plan_trial_days(billing_client, billing_org):
    body = subscribe(billing_client, billing_org, plan="professional", trial_days=None).json()
    assert body["status"] == "trialing" and body["trial_end"] is not None
    org = Organization.objects.get(pk=billing_org.pk)
    assert organization_plan_get(org).code == "professional"


def test_trial_without_a_card_is_allowed_but_paid_without_one_is_not(billing_client, billing_org):
    no_card = subscribe(billing_client, billing_org, payment_method=None)
    assert no_card.status_code == 400 and "payment_method" in no_card.json()["fields"]
    trial = subscribe(billing_client, billing_org, payment_method=None, trial_days=7)
    assert trial.status_code == 201 and trial.json()["status"] == "trialing"


def test_upgrade_mid_period_creates_proration(billing_client, billing_org, stripe_emulator):
    subscribe(billing_client, billing_org)
    response = billing_client.patch(sub_url(billing_org), {"plan": "professional"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["plan"] == "professional"
    items = stripe_emulator.objects("invoiceitem")
    prorations = [
        i
        for i in items
        if (
            i.get("proration")
            or (i.get("parent") or {}).get("subscription_item_details", {}).get("proration")
        )
    ]
    assert prorations, items
    assert sum(i["amount"] for i in prorations) > 0  # upgrade: the customer owes the difference


def test_change_interval(billing_client, billing_org):
    subscribe(billing_client, billing_org)
    body = billing_client.patch(sub_url(billing_org), {"interval": "year"}, format="json").json()
    assert (body["plan"], body["interval"]) == ("starter", "year")


def test_cancel_at_period_end_and_resume(billing_client, billing_org):
    subscribe(billing_client, billing_org)
    body = billing_client.post(sub_url(billing_org, "/cancel"), {"immediately": False}, format="json").json()
    assert body["cancel_at_period_end"] is True and body["status"] == "active" and body["plan"] == "starter"
    body = billing_client.post(sub_url(billing_org, "/resume")).json()
    assert body["cancel_at_period_end"] is False


def test_cancel_now_returns_to_free(billing_client, billing_org):
    subscribe(billing_client, billing_org)
    body = billing_client.post(sub_url(billing_org, "/cancel"), {"immediately": True}, format="json").json()
    assert body["plan"] == "free" and body["stripe_id"] is None
    detail = billing_client.get(f"/api/v1/organizations/{billing_org.id}").json()
    assert (detail["plan"], detail["subscription_status"]) == ("free", "canceled")
    assert subscribe(billing_client, billing_org).status_code == 201  # may subscribe again


def test_members_cannot_subscribe(billing_member_client, billing_org):
    assert subscribe(billing_member_client, billing_org).status_code == 403
    assert billing_member_client.get(sub_url(billing_org)).status_code == 200


def test_cancel_without_subscription_is_404(billing_client, billing_org):
    response = billing_client.post(sub_url(billing_org, "/cancel"), {"immediately": True}, format="json")
    assert response.status_code == 404


def test_checkout_creates_the_subscription(billing_client, billing_org, stripe_emulator, webhooks):
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/checkout-sessions",
        {
            "kind": "subscription",
            "plan": "business",
            "interval": "year",
            "success_url": "http://localhost/ok",
            "cancel_url": "http://localhost/cancel",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    session = stripe_emulator.get(response.json()["id"])
    assert session["mode"] == "subscription" and session["client_reference_id"] == str(billing_org.id)
    assert response.json()["url"].startswith(stripe_emulator.base_url)
    outcome = stripe_emulator.checkout_submit(session["id"], "success")
    assert outcome["status"] == "complete" and outcome["redirect"].startswith("http://localhost/ok")
    webhooks.deliver()
    body = billing_client.get(sub_url(billing_org)).json()
    assert (body["plan"], body["interval"], body["status"]) == ("business", "year", "trialing")


def test_checkout_for_an_organization_with_a_subscription_is_409(billing_client, billing_org):
    subscribe(billing_client, billing_org)
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/checkout-sessions",
        {
            "kind": "subscription",
            "plan": "business",
            "success_url": "http://localhost/ok",
            "cancel_url": "http://localhost/no",
        },
        format="json",
    )
    assert response.status_code == 409


def test_portal_cancellation_reaches_the_organization(billing_client, billing_org, stripe_emulator, webhooks):
    subscribe(billing_client, billing_org)
    portal = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/portal-sessions",
        {"return_url": "http://localhost/billing"},
        format="json",
    )
    assert portal.status_code == 200
    url = portal.json()["url"]
    assert url.startswith(stripe_emulator.base_url)
    page = stripe_emulator.handle("GET", url, {}, None)
    assert page[0] == 200 and b"starter" in page[2].lower()
    sub_id = billing_client.get(sub_url(billing_org)).json()["stripe_id"]
    status, _, _ = stripe_emulator.handle(
        "POST",
        url,
        {"Content-Type": "application/x-www-form-urlencoded"},
        f"action=cancel_now&subscription={sub_id}".encode(),
    )
    assert status in (200, 303)
    webhooks.deliver()
    detail = billing_client.get(f"/api/v1/organizations/{billing_org.id}").json()
    assert (detail["plan"], detail["subscription_status"]) == ("free", "canceled")

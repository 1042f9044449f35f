from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Role
from credits.models import CreditAccount, CreditTransaction
from credits.services import credit_account_settings_update, credit_consume, credit_grant
from tests.billing.factories import MembershipFactory, UserFactory
from tests.credits.factories import CreditPackFactory, CreditPriceFactory

pytestmark = pytest.mark.django_db
D = Decimal


def url(org, tail=""):
    return f"/api/v1/organizations/{org.id}/credits{tail}"


def balance(org):
    account = CreditAccount.objects.filter(organization=org).first()
    return account.balance if account is not None else D(0)


def test_summary_of_an_organization_without_credits(member_client, organization):
    body = member_client.get(url(organization)).json()
    assert body["balance"] == "0" and body["low_balance"] is False and body["expiring"] == []
    assert body["by_source"] == {
        "purchased": "0",
        "subscription": "0",
        "promo": "0",
        "manual": "0",
        "refund": "0",
    }
    assert body["auto_refill"]["enabled"] is False


def test_summary(member_client, organization):
    ends = timezone.now() + timedelta(days=10)
    credit_grant(organization=organization, amount=1500, source="purchase", reference="pi_1")
    credit_grant(organization=organization, amount="12.5", source="subscription", expires_at=ends)
    credit_account_settings_update(organization=organization, low_balance_threshold=2000)
    body = member_client.get(url(organization)).json()
    assert body["balance"] == "1512.5"
    assert body["by_source"]["purchased"] == "1500" and body["by_source"]["subscription"] == "12.5"
    assert body["expiring"] == [{"amount": "12.5", "expires_at": ends.isoformat().replace("+00:00", "Z")}]
    assert body["low_balance"] is True and body["low_balance_threshold"] == "2000"


def test_consume_with_an_api_key(key_client, organization, api_key):
    credit_grant(organization=organization, amount=10)
    response = key_client.post(
        url(organization, "/consume"),
        {"amount": "2.5", "reason": "sms", "idempotency_key": "c1"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["consumed"] == "2.5" and body["balance"] == "7.5"
    row = CreditTransaction.objects.get(pk=body["transaction_id"])
    assert row.actor == f"api_key:{api_key.api_key.pk}" and row.reason == "sms"


def test_consume_an_event_with_a_quantity(admin_client, organization):
    CreditPriceFactory(event_name="SMS_SENT", credits_per_unit=D("0.5"))
    credit_grant(organization=organization, amount=10)
    body = admin_client.post(
        url(organization, "/consume"),
        {
            "event_name": "SMS_SENT",
            "quantity": 3,
            "reason": "campaign",
            "idempotency_key": "e1",
            "metadata": {"campaign": 7},
        },
        format="json",
    ).json()
    assert body["consumed"] == "1.5" and body["balance"] == "8.5"
    assert CreditTransaction.objects.get(pk=body["transaction_id"]).metadata == {"campaign": 7}


def test_consume_402_consumes_nothing(admin_client, organization):
    credit_grant(organization=organization, amount=2)
    response = admin_client.post(
        url(organization, "/consume"), {"amount": 5, "reason": "x", "idempotency_key": "k"}, format="json"
    )
    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "insufficient_credits" and body["balance"] == "2" and body["required"] == "5"
    assert body["message"]
    assert balance(organization) == D(2)


def test_consume_replay_and_conflict(admin_client, organization):
    credit_grant(organization=organization, amount=10)
    payload = {"amount": 3, "reason": "x", "idempotency_key": "same"}
    first = admin_client.post(url(organization, "/consume"), payload, format="json")
    again = admin_client.post(url(organization, "/consume"), {**payload, "amount": "3.0"}, format="json")
    assert again.status_code == 200 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    conflict = admin_client.post(url(organization, "/consume"), {**payload, "amount": 4}, format="json")
    assert conflict.status_code == 409 and conflict.json()["error"] == "idempotency_conflict"
    assert balance(organization) == D(7)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"reason": "x", "idempotency_key": "k"}, "non_field_errors"),
        ({"amount": 1, "event_name": "SMS_SENT", "reason": "x", "idempotency_key": "k"}, "non_field_errors"),
        ({"amount": 1, "reason": "x"}, "idempotency_key"),
        ({"amount": "1.00001", "reason": "x", "idempotency_key": "k"}, "amount"),
        ({"amount": -1, "reason": "x", "idempotency_key": "k"}, "amount"),
        ({"amount": "abc", "reason": "x", "idempotency_key": "k"}, "amount"),
        ({"amount": True, "reason": "x", "idempotency_key": "k"}, "amount"),
        ({"amount": "NaN", "reason": "x", "idempotency_key": "k"}, "amount"),
        ({"amount": 1, "quantity": 2, "reason": "x", "idempotency_key": "k"}, "quantity"),
        ({"event_name": "NOPE", "reason": "x", "idempotency_key": "k"}, "event_name"),
    ],
)
def test_consume_validation(admin_client, organization, payload, field):
    response = admin_client.post(url(organization, "/consume"), payload, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error" and field in body["fields"]


def test_grant_is_for_platform_keys_with_the_scope_never_for_tenants(
    member_client, owner_client, key_client, platform_client, organization
):
    payload = {"amount": "100", "reason": "promo", "idempotency_key": "g1"}
    for tenant in (member_client, owner_client, key_client, platform_client("credits:consume")):
        denied = tenant.post(url(organization, "/grant"), payload, format="json")
        assert denied.status_code == 403 and denied.json()["error"] == "permission_denied"
    assert balance(organization) == D(0)
    operator = platform_client("credits:grant")
    created = operator.post(url(organization, "/grant"), {**payload, "source": "promo"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert (
        body["amount"] == "100"
        and body["balance"] == "100"
        and body["source"] == "promo"
        and body["expires_at"] is None
    )
    again = operator.post(url(organization, "/grant"), {**payload, "source": "promo"}, format="json")
    assert again.json()["transaction_id"] == body["transaction_id"]
    assert balance(organization) == D(100)


def test_staff_can_grant_to_any_organization(organization):
    client = APIClient()
    staff = UserFactory(is_staff=True)
    client.force_authenticate(staff)
    ends = (timezone.now() + timedelta(days=3)).isoformat()
    response = client.post(
        url(organization, "/grant"),
        {"amount": 5, "reason": "support", "idempotency_key": "s", "expires_at": ends},
        format="json",
    )
    assert response.status_code == 201
    assert CreditTransaction.objects.get(pk=response.json()["transaction_id"]).actor == f"staff:{staff.pk}"


def test_transactions_paginated_and_filtered(member_client, organization, clock):
    credit_grant(organization=organization, amount=100)
    clock.shift(timedelta(days=1))
    day2 = timezone.now()
    for i in range(25):
        credit_consume(organization=organization, amount=1, idempotency_key=f"c{i}")
    clock.shift(timedelta(days=1))
    credit_consume(organization=organization, amount=1)
    page = member_client.get(url(organization, "/transactions"), {"page_size": 10}).json()
    assert page["count"] == 27 and len(page["results"]) == 10 and page["next"]
    newest = page["results"][0]
    assert newest["kind"] == "consume" and newest["amount"] == "-1" and newest["balance_after"] == "74"
    grants = member_client.get(url(organization, "/transactions"), {"kind": "grant"}).json()
    assert grants["count"] == 1 and grants["results"][0]["source"] == "manual"
    window = member_client.get(
        url(organization, "/transactions"),
        {"start": day2.isoformat(), "end": (day2 + timedelta(hours=1)).isoformat()},
    ).json()
    assert window["count"] == 25
    bad = member_client.get(url(organization, "/transactions"), {"kind": "nope"})
    assert bad.status_code == 400


def test_reverse_a_consumption(owner_client, platform_client, organization):
    credit_grant(organization=organization, amount=10)
    used = credit_consume(organization=organization, amount=4).transaction
    path = url(organization, f"/transactions/{used.pk}/reverse")
    assert owner_client.post(path, {"reason": "undelivered"}, format="json").status_code == 403
    assert balance(organization) == D(6)
    operator = platform_client("credits:grant")
    first = operator.post(path, {"reason": "undelivered"}, format="json")
    assert first.status_code == 201 and first.json()["kind"] == "refund" and first.json()["amount"] == "4"
    assert first.json()["actor"].startswith("platform_key:")
    assert operator.post(path, {"reason": "undelivered"}, format="json").status_code == 200
    assert balance(organization) == D(10)


def test_auto_refill_settings(owner_client, member_client, organization, stripe_emulator):
    CreditPackFactory(code="credits-5k", credits=D(5000), amount=4500)
    assert member_client.get(url(organization, "/auto-refill")).json()["enabled"] is False
    payload = {
        "enabled": True,
        "threshold": "100",
        "pack": "credits-5k",
        "payment_method": "pm_card_visa",
        "max_refills_per_day": 2,
    }
    assert member_client.put(url(organization, "/auto-refill"), payload, format="json").status_code == 403
    saved = owner_client.put(url(organization, "/auto-refill"), payload, format="json")
    assert saved.status_code == 200, saved.content
    card = saved.json()["payment_method"]  # the test card, saved to the organization's customer
    assert card.startswith("pm_") and card != "pm_card_visa"
    assert stripe_emulator.get(card)["customer"]
    assert saved.json() | {} == {
        "enabled": True, "threshold": "100", "pack": "credits-5k", "amount": None, "payment_method": card,
        "max_refills_per_day": 2, "consecutive_failures": 0, "disabled_reason": "",
    }  # fmt: skip
    payload["payment_method"] = card
    assert member_client.get(url(organization)).json()["auto_refill"]["pack"] == "credits-5k"
    unknown = owner_client.put(url(organization, "/auto-refill"), {**payload, "pack": "nope"}, format="json")
    assert unknown.status_code == 400 and "pack" in unknown.json()["fields"]
    both = owner_client.put(url(organization, "/auto-refill"), {**payload, "amount": 10}, format="json")
    assert both.status_code == 400 and "pack" in both.json()["fields"]
    amount = owner_client.put(
        url(organization, "/auto-refill"), {**payload, "pack": None, "amount": "2500"}, format="json"
    )
    assert amount.json()["amount"] == "2500" and amount.json()["pack"] is None


def test_billing_role_sets_the_low_balance_threshold(organization):
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=organization, role=Role.BILLING).user)
    credit_grant(organization=organization, amount=10)
    response = client.put(url(organization, "/low-balance"), {"threshold": "25"}, format="json")
    assert response.json() == {"threshold": "25", "low_balance": True}
    assert (
        client.put(url(organization, "/low-balance"), {"threshold": None}, format="json").json()["threshold"]
        is None
    )


def test_public_catalogue_needs_no_auth(api_client):
    CreditPackFactory(code="x", credits=D(10), amount=100)
    assert api_client.get("/api/v1/credit-packs").status_code == 200
    assert api_client.get("/api/v1/credit-prices").status_code == 200


def test_other_tenants_credits_are_404(owner_client):
    from tests.billing.factories import OrganizationFactory

    other = OrganizationFactory()
    credit_grant(organization=other, amount=10)
    assert owner_client.get(url(other)).status_code == 404
    assert (
        owner_client.post(
            url(other, "/consume"), {"amount": 1, "reason": "x", "idempotency_key": "k"}, format="json"
        ).status_code
        == 404
    )
    assert balance(other) == D(10)


def test_schema_lists_the_credit_endpoints(client):
    schema = client.get("/api/schema/").content.decode()
    for path in [
        "/credits/consume",
        "/credits/grant",
        "/credits/transactions",
        "/credits/auto-refill",
        "/api/v1/credit-packs",
    ]:
        assert path in schema

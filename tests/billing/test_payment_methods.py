import pytest

from billing.models import Membership, Role
from tests.billing.factories import UserFactory

pytestmark = pytest.mark.django_db


def url(org, suffix=""):
    return f"/api/v1/organizations/{org.id}/payment-methods{suffix}"


def test_setup_intent_gives_a_client_secret(billing_client, billing_org, stripe_emulator):
    body = billing_client.post(url(billing_org, "/setup-intent")).json()
    assert body["client_secret"].startswith("seti_") and "_secret_" in body["client_secret"]
    assert len(stripe_emulator.objects("setup_intent")) == 1


def test_attach_list_default_and_detach(billing_client, billing_org):
    first = billing_client.post(url(billing_org), {"payment_method": "pm_card_visa"}, format="json")
    assert first.status_code == 201, first.content
    visa = first.json()
    assert visa["brand"] == "visa" and visa["last4"] == "4242" and visa["is_default"] is True
    assert visa["id"].startswith("pm_") and visa["exp_year"] >= 2026

    second = billing_client.post(
        url(billing_org), {"payment_method": "pm_card_mastercard"}, format="json"
    ).json()
    assert second["brand"] == "mastercard" and second["is_default"] is False

    listed = billing_client.get(url(billing_org)).json()
    assert [m["id"] for m in listed] == [visa["id"], second["id"]]
    assert [m["is_default"] for m in listed] == [True, False]

    billing_client.post(url(billing_org, f"/{second['id']}/default"))
    listed = billing_client.get(url(billing_org)).json()
    assert listed[0]["id"] == second["id"] and listed[0]["is_default"] is True

    assert billing_client.delete(url(billing_org, f"/{visa['id']}")).status_code == 204
    assert [m["id"] for m in billing_client.get(url(billing_org)).json()] == [second["id"]]


def test_declined_card_is_402_with_the_decline_code(billing_client, billing_org):
    response = billing_client.post(
        url(billing_org), {"payment_method": "pm_card_chargeDeclined"}, format="json"
    )
    assert response.status_code == 402, response.content
    body = response.json()
    assert body["error"] == "payment_failed" and body["decline_code"] == "generic_decline"
    assert billing_client.get(url(billing_org)).json() == []


def test_another_organizations_card_is_404(billing_client, billing_org, catalogue):
    from billing.services import organization_create, payment_method_attach

    other = organization_create(name="Other", billing_email="o@o.test", owner=UserFactory())
    pm = payment_method_attach(organization=other, payment_method_id="pm_card_visa")
    assert billing_client.delete(url(billing_org, f"/{pm.id}")).json()["error"] == "not_found"
    assert billing_client.post(url(billing_org, f"/{pm.id}/default")).status_code == 404
    response = billing_client.post(url(billing_org), {"payment_method": pm.id}, format="json")
    assert response.status_code == 404


def test_members_cannot_change_cards(billing_org):
    from rest_framework.test import APIClient

    user = UserFactory()
    Membership.objects.create(user=user, organization=billing_org, role=Role.MEMBER)
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(url(billing_org)).status_code == 200
    assert client.post(url(billing_org), {"payment_method": "pm_card_visa"}, format="json").status_code == 403


def test_bad_payment_method_id_is_a_validation_error(billing_client, billing_org):
    response = billing_client.post(url(billing_org), {"payment_method": "card_123"}, format="json")
    assert response.status_code == 400 and "payment_method" in response.json()["fields"]

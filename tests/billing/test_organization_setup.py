import pytest
from django.db import DataError
from djstripe.models import Customer

from billing.models import Membership, Organization
from billing.services import organization_create
from tests.billing.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_creating_an_organization_creates_its_stripe_customer(catalogue, api_client, stripe_emulator):
    user = UserFactory()
    api_client.force_authenticate(user)
    response = api_client.post(
        "/api/v1/organizations", {"name": "Acme", "billing_email": "ap@acme.test"}, format="json"
    )
    assert response.status_code == 201, response.content
    org = Organization.objects.get(pk=response.json()["id"])
    customer = Customer.objects.get(subscriber=org)
    stripe_customer = stripe_emulator.get(customer.id)
    assert stripe_customer["email"] == "ap@acme.test"
    assert stripe_customer["metadata"]["organization_id"] == str(org.id)
    assert response.json()["plan"] == "free" and response.json()["subscription_status"] == "active"


def test_a_set_up_failing_in_the_database_deletes_the_stripe_customer(catalogue, stripe_emulator):
    owner = UserFactory()
    with pytest.raises(DataError):
        organization_create(name="x" * 300, billing_email="a@b.test", owner=owner)  # too long for the column
    assert not Organization.objects.exists()
    assert not Membership.objects.exists()
    created = [
        r for r in stripe_emulator.request_log if r["method"] == "POST" and r["path"] == "/v1/customers"
    ]
    assert len(created) == 1
    assert [c for c in stripe_emulator.objects("customer") if not c.get("deleted")] == []


def test_a_set_up_refused_by_stripe_leaves_nothing(catalogue, settings, api_client):
    settings.STRIPE_SECRET_KEY = "sk_bad_key"
    api_client.force_authenticate(UserFactory())
    response = api_client.post(
        "/api/v1/organizations", {"name": "Acme", "billing_email": "ap@acme.test"}, format="json"
    )
    assert response.status_code >= 500 and "error" in response.json()
    assert not Organization.objects.exists()


def test_stripe_down_at_set_up_is_503_and_leaves_nothing(catalogue, api_client, stripe_emulator):
    stripe_emulator.faults.add(method="POST", path="/v1/customers", status=500, times=1)
    api_client.force_authenticate(UserFactory())
    response = api_client.post(
        "/api/v1/organizations", {"name": "Acme", "billing_email": "ap@acme.test"}, format="json"
    )
    assert response.status_code == 503 and response.json()["error"] == "stripe_unavailable"
    assert not Organization.objects.exists()
    retry = api_client.post(
        "/api/v1/organizations", {"name": "Acme", "billing_email": "ap@acme.test"}, format="json"
    )
    assert retry.status_code == 201


def test_rate_limited_stripe_is_503_with_no_card_data_in_logs(
    billing_client, billing_org, stripe_emulator, caplog
):
    stripe_emulator.faults.add(method="POST", path="/v1/payment_methods/*/attach", status=429, retry_after=1)
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/payment-methods",
        {"payment_method": "pm_card_visa"},
        format="json",
    )
    assert response.status_code == 503 and response.json()["error"] == "stripe_unavailable"
    assert "stripe unavailable in payment_method_attach" in caplog.text
    assert "4242" not in caplog.text and "sk_test" not in caplog.text

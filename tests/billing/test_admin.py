import re

import pytest
from django.contrib.messages import get_messages

from billing.models import ApiKey, Role
from billing.services import api_key_create, api_key_hash
from tests.billing.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_organization_list_is_searchable_and_filterable(staff_client):
    acme = OrganizationFactory(name="Acme Rockets")
    MembershipFactory(organization=acme, role=Role.OWNER, user=UserFactory(username="wile@acme.test"))
    OrganizationFactory(name="Globex")
    page = staff_client.get("/admin/billing/organization/", {"q": "wile@acme"})
    assert page.status_code == 200
    assert b"Acme Rockets" in page.content and b"Globex" not in page.content
    filtered = staff_client.get("/admin/billing/organization/", {"memberships__role": "owner"})
    assert filtered.status_code == 200 and b"Acme Rockets" in filtered.content


def test_organization_page_shows_members_inline(staff_client):
    org = OrganizationFactory()
    member = MembershipFactory(organization=org, role=Role.BILLING)
    page = staff_client.get(f"/admin/billing/organization/{org.id}/change/")
    assert page.status_code == 200
    assert member.user.username.encode() in page.content
    assert b"memberships-TOTAL_FORMS" in page.content


def test_api_key_created_in_admin_is_shown_once_and_stored_hashed(staff_client):
    org = OrganizationFactory()
    response = staff_client.post(
        "/admin/billing/apikey/add/",
        {"organization": org.id, "name": "zapier", "role": "billing"},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    raw = re.search(r"<code>(bk_[\w-]+)</code>", " ".join(shown) + response.content.decode()).group(1)
    key = ApiKey.objects.get(organization=org)
    assert key.hashed_key == api_key_hash(raw) and key.role == "billing"
    again = staff_client.get(f"/admin/billing/apikey/{key.pk}/change/")
    assert raw.encode() not in again.content


def test_revoke_action(staff_client):
    org = OrganizationFactory()
    keys = [api_key_create(organization=org, name=f"k{i}").api_key for i in range(2)]
    response = staff_client.post(
        "/admin/billing/apikey/",
        {"action": "revoke_selected", "_selected_action": [str(keys[0].pk)]},
        follow=True,
    )
    assert response.status_code == 200
    keys[0].refresh_from_db()
    keys[1].refresh_from_db()
    assert keys[0].revoked_at is not None and keys[1].revoked_at is None


def test_plan_admin_edits_limits_and_shows_prices(staff_client, catalogue):
    page = staff_client.get("/admin/billing/plan/")
    assert page.status_code == 200 and b"29.00 USD/month" in page.content
    starter = catalogue["starter"]
    change = staff_client.get(f"/admin/billing/plan/{starter.pk}/change/")
    assert change.status_code == 200 and b"prices-TOTAL_FORMS" in change.content


def test_subscription_and_customer_admin_show_organization_plan_and_status(staff_client, billing_org):
    from billing.services import subscription_create

    subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    subs = staff_client.get("/admin/djstripe/subscription/", {"status": "active", "plan": "starter"})
    assert subs.status_code == 200
    assert b"Acme" in subs.content and b"Starter" in subs.content
    assert (
        staff_client.get("/admin/djstripe/subscription/", {"status": "canceled"}).content.count(b"Acme") == 0
    )
    customers = staff_client.get("/admin/djstripe/customer/", {"plan": "starter"})
    assert customers.status_code == 200 and b"Acme" in customers.content
    org_page = staff_client.get(f"/admin/billing/organization/{billing_org.pk}/change/")
    assert b"/admin/djstripe/subscription/" in org_page.content and b"Customer cus_" in org_page.content
    filtered = staff_client.get("/admin/billing/organization/", {"subscription_status": "active"})
    assert b"Acme" in filtered.content


def test_the_free_plan_cannot_be_deleted_in_the_admin(staff_client, catalogue):
    free, starter = catalogue["free"], catalogue["starter"]
    assert staff_client.get(f"/admin/billing/plan/{free.pk}/delete/").status_code == 403
    assert staff_client.get(f"/admin/billing/plan/{starter.pk}/delete/").status_code == 200

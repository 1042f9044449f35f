"""Who may read the analytics: staff and platform keys with `analytics:read`; everybody else is
refused on every path (and the dashboard), and bad query parameters are 400s in the error shape."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from billing.models import Role
from billing.services import api_key_create, platform_key_create, subscription_create
from tests.billing.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PATHS = [
    "/api/v1/analytics/revenue",
    "/api/v1/analytics/credits",
    "/api/v1/analytics/usage",
    "/api/v1/analytics/payouts",
    "/api/v1/analytics/balance-transactions",
]


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def refused(organization) -> dict[str, APIClient]:
    """Every caller that must get 403."""
    out = {}
    for role in (Role.MEMBER, Role.BILLING, Role.ADMIN, Role.OWNER):
        client = APIClient()
        client.force_authenticate(MembershipFactory(organization=organization, role=role).user)
        out[f"{role} session"] = client
    out["organization key"] = bearer(api_key_create(organization=organization, name="k").raw_key)
    out["platform key without the scope"] = bearer(
        platform_key_create(
            name="p", scopes=["credits:grant", "credits:consume", "usage:write", "organizations:read"]
        ).raw_key
    )
    out["platform key with one other scope"] = bearer(
        platform_key_create(name="reader", scopes=["organizations:read"]).raw_key
    )
    return out


@pytest.mark.parametrize("path", PATHS)
def test_only_staff_and_analytics_keys_read_the_analytics(path, refused, staff_client, platform_client):
    for name, client in refused.items():
        response = client.get(path)
        assert response.status_code == 403, (name, response.content)
        assert response.json()["error"] == "permission_denied"
    anonymous = APIClient().get(path)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "not_authenticated"
    assert staff_client.get(path).status_code == 200
    assert platform_client("analytics:read").get(path).status_code == 200


@pytest.mark.parametrize(
    "params, field",
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-45T00:00:00Z"}, "end"),
        ({"start": "2026-03-02T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "end"),
        ({"start": "2024-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),  # over 400 days
        ({"start": "0001-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"end": "9999-12-31T23:59:59Z"}, "end"),
        ({"currency": "dollars"}, "currency"),
        ({"currency": "u$d"}, "currency"),
    ],
)
@pytest.mark.parametrize("path", PATHS)
def test_bad_parameters_are_400_in_the_error_shape(path, params, field, staff_client):
    response = staff_client.get(path, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "validation_error" and field in body["fields"]


def test_bad_liability_instant_and_transaction_type_are_400(staff_client):
    assert staff_client.get(PATHS[1], {"at": "1900-01-01T00:00:00Z"}).json()["fields"].keys() == {"at"}
    assert staff_client.get(PATHS[4], {"type": "bogus"}).json()["fields"].keys() == {"type"}
    assert staff_client.get(PATHS[4], {"page": "9999"}).status_code == 404


def test_the_dashboard_is_for_staff_only(client, organization, billing_org, catalogue):
    url = reverse("staff-dashboard")
    tenant = MembershipFactory(organization=organization, role=Role.OWNER).user
    client.force_login(tenant)
    assert client.get(url).status_code == 403
    client.logout()
    key = api_key_create(organization=organization, name="k").raw_key
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 403
    platform = platform_key_create(name="p", scopes=["analytics:read"]).raw_key
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {platform}").status_code == 403
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and reverse("admin:login") in anonymous["Location"]


def test_the_dashboard_shows_the_figures_and_links_to_the_lists(client, billing_org, catalogue):
    subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    index = client.get(reverse("admin:index")).content.decode()
    assert 'id="staff-dashboard-link"' in index  # first on the admin index, before the app list
    assert index.index('id="staff-dashboard-link"') < index.index('class="app-')
    page = client.get(reverse("staff-dashboard"))
    assert page.status_code == 200
    html = page.content.decode()
    mrr_tile = html[html.index('id="tile-mrr"') : html.index('id="tile-usage-mrr"')]
    assert "$29.00" in mrr_tile and "$348.00" in mrr_tile  # MRR, and ARR = 12 x 29.00
    assert "status=active" in mrr_tile  # links to the subscriptions behind it
    assert "<svg" in html and "MRR per month" in html
    assert "No reconcile run recorded." in html
    plans = html[html.index('id="subscriptions"') : html.index('id="failed-payments"')]
    assert "starter" in plans and "status=active&amp;plan=starter" in plans
    for link in (
        "/admin/invoices/invoice/?kind__exact=stripe&amp;status__exact=open",
        "/admin/credits/creditgrant/?source__exact=purchase",
        "/admin/credits/credittransaction/?kind__exact=consume",
    ):
        assert link in html, link
    # Every link on the page opens.
    import re

    for href in set(re.findall(r'href="(/admin/[^"]+)"', html)):
        assert client.get(href.replace("&amp;", "&")).status_code == 200, href

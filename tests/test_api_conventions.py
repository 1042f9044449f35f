"""The API contract's conventions: error shape, authentication, pagination, schema."""

import pytest
from rest_framework.test import APIClient

from billing.models import ApiKey, Role
from billing.services import api_key_create, api_key_revoke
from tests.billing.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in response.content.decode()
    return body


def test_unauthenticated_is_401_in_the_error_shape(api_client):
    assert_error(api_client.get("/api/v1/organizations"), 401, "not_authenticated")


def test_bad_bearer_key_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Bearer bk_nope")
    assert_error(api_client.get("/api/v1/organizations"), 401, "not_authenticated")


def test_validation_error_lists_fields(owner_client):
    body = assert_error(
        owner_client.post("/api/v1/organizations", {"name": ""}, format="json"), 400, "validation_error"
    )
    assert set(body["fields"]) == {"name", "billing_email"}


def test_malformed_json_is_a_400_not_a_500(owner_client):
    response = owner_client.post("/api/v1/organizations", data="{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_method_not_allowed_is_405(owner_client):
    assert_error(owner_client.put("/api/v1/organizations", {}, format="json"), 405, "method_not_allowed")


def test_another_tenants_organization_is_404(owner_client):
    other = OrganizationFactory()
    assert_error(owner_client.get(f"/api/v1/organizations/{other.id}"), 404, "not_found")


def test_unknown_path_under_api_is_json_404(owner_client):
    assert_error(owner_client.get("/api/v1/organizations/not-a-uuid"), 404, "not_found")


def test_role_too_low_is_403(member_client, organization):
    assert_error(
        member_client.get(f"/api/v1/organizations/{organization.id}/api-keys"), 403, "permission_denied"
    )


def test_throttled_is_429_with_retry_after(owner_client, settings):
    settings.THROTTLE_RATES = {"user": "2/min", "anon": "2/min", "address": "100/min"}
    owner_client.get("/api/v1/organizations")
    owner_client.get("/api/v1/organizations")
    body = assert_error(owner_client.get("/api/v1/organizations"), 429, "rate_limited")
    assert body["retry_after"] > 0


@pytest.mark.urls("tests.urls_errors")
def test_unhandled_exception_is_a_json_500_without_internals(api_client):
    api_client.raise_request_exception = False
    body = assert_error(api_client.get("/api/v1/boom"), 500, "server_error")
    assert "secret internals" not in str(body)


@pytest.mark.urls("tests.urls_errors")
def test_unhandled_exception_in_a_plain_view_under_api_is_json(client):
    client.raise_request_exception = False
    body = assert_error(client.get("/api/v1/plain-boom"), 500, "server_error")
    assert "secret internals" not in str(body)


def test_pagination_shape_and_page_size_cap(owner, owner_client):
    for i in range(104):
        MembershipFactory(user=owner, organization=OrganizationFactory(name=f"Org {i:03}"), role=Role.MEMBER)
    body = owner_client.get("/api/v1/organizations?page_size=10&page=2").json()
    assert body["count"] == 105
    assert len(body["results"]) == 10
    assert "page=3" in body["next"] and "page_size=10" in body["next"]
    assert body["previous"]
    assert len(owner_client.get("/api/v1/organizations?page_size=500").json()["results"]) == 100
    assert_error(owner_client.get("/api/v1/organizations?page=99"), 404, "not_found")


def test_session_writes_need_csrf(owner):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(
        "/api/v1/organizations", {"name": "X", "billing_email": "x@example.com"}, format="json"
    )
    body = assert_error(response, 403, "permission_denied")
    assert "CSRF" in body["message"]
    client.get("/api/v1/organizations")  # reads need no token
    token = client.cookies.get("csrftoken")
    if token is None:
        client.get("/accounts/login/")
        token = client.cookies["csrftoken"]
    response = client.post(
        "/api/v1/organizations",
        {"name": "X", "billing_email": "x@example.com"},
        format="json",
        HTTP_X_CSRFTOKEN=token.value,
    )
    assert response.status_code == 201, response.content


def test_bearer_key_sees_only_its_organization_and_records_use(key_client, api_key, organization):
    OrganizationFactory()
    body = key_client.get("/api/v1/organizations").json()
    assert [o["id"] for o in body["results"]] == [str(organization.id)]
    assert key_client.get(f"/api/v1/organizations/{organization.id}").status_code == 200
    api_key.api_key.refresh_from_db()
    assert api_key.api_key.last_used_at is not None
    assert_error(
        key_client.post("/api/v1/organizations", {"name": "n", "billing_email": "a@b.co"}, format="json"),
        403,
        "permission_denied",
    )


def test_bearer_writes_need_no_csrf(organization):
    created = api_key_create(organization=organization, name="k")
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.raw_key}")
    response = client.post(
        f"/api/v1/organizations/{organization.id}/api-keys", {"name": "second"}, format="json"
    )
    assert response.status_code == 201


def test_revoked_key_is_refused(key_client, api_key, organization):
    api_key_revoke(api_key=api_key.api_key)
    assert_error(key_client.get(f"/api/v1/organizations/{organization.id}"), 401, "not_authenticated")


def test_narrow_key_role_is_enforced(organization):
    created = api_key_create(organization=organization, name="reader", role=Role.MEMBER)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.raw_key}")
    assert client.get(f"/api/v1/organizations/{organization.id}").status_code == 200
    assert_error(client.get(f"/api/v1/organizations/{organization.id}/api-keys"), 403, "permission_denied")


def test_api_key_is_stored_hashed_and_shown_once(owner_client, organization):
    response = owner_client.post(
        f"/api/v1/organizations/{organization.id}/api-keys", {"name": "ci"}, format="json"
    )
    assert response.status_code == 201
    raw = response.json()["key"]
    stored = ApiKey.objects.get(pk=response.json()["id"])
    assert raw not in (stored.hashed_key, stored.prefix) and raw.startswith(stored.prefix)
    listed = owner_client.get(f"/api/v1/organizations/{organization.id}/api-keys").json()["results"]
    assert all("key" not in item for item in listed)
    assert raw not in str(listed)
    revoked = owner_client.delete(f"/api/v1/organizations/{organization.id}/api-keys/{stored.id}").json()
    assert revoked["revoked_at"] is not None


def test_create_organization_makes_the_caller_owner(api_client):
    user = UserFactory()
    api_client.force_authenticate(user)
    response = api_client.post(
        "/api/v1/organizations", {"name": "Acme", "billing_email": "ap@acme.test"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert {"id", "name", "billing_email", "plan", "subscription_status"} <= set(body)
    assert user.memberships.get().role == Role.OWNER
    assert api_client.get(f"/api/v1/organizations/{body['id']}").json()["name"] == "Acme"


def test_schema_and_docs_load(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/organizations" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()

"""Who may do what: every organization endpoint, every method, every kind of caller.

The endpoints are found from the URL patterns (like the tenant walk in
`test_tenant_isolation.py`), so a new endpoint is covered without new test code; each view
declares the action of each method (`OrganizationApi.actions`), and the expected answer for
each action and caller is written out here, independently of `billing.access.RULES`. After
every refusal the ledger, the subscriptions, the cards and everything else that moves value is
unchanged, and Stripe saw no write."""

from __future__ import annotations

import pytest
from djstripe.models import Customer, PaymentMethod, Subscription
from rest_framework.test import APIClient

from billing.models import ApiKey, BillingNotice, Organization, PlatformKey, Role
from billing.services import api_key_create, platform_key_create
from billing.tenancy import OrganizationApi
from credits.models import (
    AutoRefill,
    CreditAccount,
    CreditGrant,
    CreditHold,
    CreditPurchase,
    CreditTransaction,
)
from credits.services import credit_consume, credit_grant
from invoices.models import Invoice, InvoiceLine, InvoiceSend, PaymentLink
from tests.billing.factories import MembershipFactory, UserFactory
from tests.test_tenant_isolation import allowed_methods, build_path, organization_routes
from usage.models import UsageEvent, UsageEventKey, UsageRollup, UsageSyncState

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["credits:grant", "credits:consume", "usage:write", "organizations:read", "analytics:read"]

# The product's rule, written out for the test: who is allowed each action.
TENANT_MINIMUM = {
    "read": Role.MEMBER,
    "consume": Role.ADMIN,
    "usage_write": Role.ADMIN,
    "pay": Role.BILLING,
    "manage": Role.ADMIN,
    "grant": None,  # never a tenant
}
PLATFORM_SCOPE = {
    "read": "organizations:read",
    "consume": "credits:consume",
    "usage_write": "usage:write",
    "pay": None,  # never a platform key
    "manage": None,
    "grant": "credits:grant",
}
RANK = {Role.MEMBER: 0, Role.BILLING: 1, Role.ADMIN: 2, Role.OWNER: 3}


def expected_allowed(principal: dict, action: str) -> bool:
    kind = principal["kind"]
    if kind == "anonymous":
        return False
    if kind == "staff":
        return True
    if kind == "platform":
        scope = PLATFORM_SCOPE[action]
        return scope is not None and scope in principal["scopes"]
    minimum = TENANT_MINIMUM[action]
    return minimum is not None and RANK[principal["role"]] >= RANK[minimum]


def principals(organization) -> dict[str, dict]:
    out: dict[str, dict] = {"anonymous": {"kind": "anonymous", "client": APIClient()}}
    for role in (Role.MEMBER, Role.BILLING, Role.ADMIN, Role.OWNER):
        client = APIClient()
        client.force_authenticate(MembershipFactory(organization=organization, role=role).user)
        out[f"{role} session"] = {"kind": "tenant", "role": role, "client": client}
    for role in (Role.MEMBER, Role.BILLING, Role.ADMIN):
        client = APIClient()
        key = api_key_create(organization=organization, name=f"{role} key", role=role).raw_key
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        out[f"{role} organization key"] = {"kind": "tenant", "role": role, "client": client}
    for scopes in [[scope] for scope in ALL_SCOPES] + [ALL_SCOPES]:
        client = APIClient()
        key = platform_key_create(name="p", scopes=scopes).raw_key
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        out[f"platform key {'+'.join(scopes)}"] = {
            "kind": "platform",
            "scopes": set(scopes),
            "client": client,
        }
    staff = APIClient()
    staff.force_authenticate(UserFactory(is_staff=True))
    out["staff"] = {"kind": "staff", "client": staff}
    return out


def snapshot(organization, stripe_emulator) -> dict:
    """Everything a refused request must leave as it was."""
    org = Organization.objects.get(pk=organization.pk)
    account = CreditAccount.objects.filter(organization=organization).values().first()
    return {
        "organization": (
            org.plan_id,
            org.subscription_status,
            org.trial_used_at,
            org.name,
            org.billing_email,
        ),
        "account": account,
        "ledger": list(
            CreditTransaction.objects.filter(organization=organization).values_list("id", "amount")
        ),
        "grants": list(CreditGrant.objects.filter(organization=organization).values_list("id", "remaining")),
        "purchases": list(
            CreditPurchase.objects.filter(organization=organization).values_list("id", "status")
        ),
        "auto_refill": list(AutoRefill.objects.filter(account__organization=organization).values()),
        "api_keys": list(ApiKey.objects.filter(organization=organization).values_list("id", "revoked_at")),
        "platform_keys": PlatformKey.objects.count(),
        "subscriptions": list(Subscription.objects.values_list("id", "stripe_data")),
        "cards": list(PaymentMethod.objects.values_list("id", "customer_id")),
        "customers": list(Customer.objects.values_list("id", "stripe_data")),
        "notices": BillingNotice.objects.count(),
        "invoices": list(Invoice.objects.values_list("id", "status", "number")),
        "invoice_lines": InvoiceLine.objects.count(),
        "invoice_sends": InvoiceSend.objects.count(),
        "payment_links": PaymentLink.objects.count(),
        "holds": list(CreditHold.objects.filter(organization=organization).values_list("id", "status")),
        "usage_events": UsageEvent.objects.filter(organization_id=organization.pk).count(),
        "usage_keys": UsageEventKey.objects.filter(organization_id=organization.pk).count(),
        "usage_rollups": list(
            UsageRollup.objects.filter(organization_id=organization.pk).values_list(
                "hour", "quantity", "events"
            )
        ),
        "usage_sync": list(UsageSyncState.objects.filter(organization=organization).values_list("status")),
        "stripe_writes": sum(1 for entry in stripe_emulator.request_log if entry["method"] != "GET"),
    }


def view_of(pattern):
    return getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)


def test_every_organization_endpoint_is_an_organization_api():
    """The rule is enforced by the base class, so every endpoint must use it."""
    routes = organization_routes()
    assert len(routes) >= 10
    for route, pattern in routes:
        assert issubclass(view_of(pattern), OrganizationApi), f"{route} does not build on OrganizationApi"


def test_every_caller_gets_what_the_table_says_and_a_refusal_changes_nothing(billing_org, stripe_emulator):
    organization = billing_org
    credit_grant(organization=organization, amount=50, reference="seed")
    consumption = credit_consume(organization=organization, amount=5)
    callers = principals(organization)
    routes = organization_routes()
    failures: list[str] = []
    checked = refusals = 0
    for route, pattern in routes:
        view = view_of(pattern)
        for method in allowed_methods(pattern):
            action = str(view.action_for(method))
            assert action in TENANT_MINIMUM, f"{method} {route}: unknown action {action!r}"
            # A real consumption in the reversal's path, so an allowed reversal has one to reverse.
            path = build_path(
                route.replace("<uuid:transaction_id>", str(consumption.transaction.pk)), organization.id
            )
            for who, principal in callers.items():
                before = snapshot(organization, stripe_emulator)
                response = principal["client"].generic(
                    method, path, data="{}", content_type="application/json"
                )
                checked += 1
                allowed = expected_allowed(principal, action)
                status = response.status_code
                if allowed:
                    if status in (401, 403):
                        failures.append(f"{who} {method} {route} ({action}): {status}, expected allowed")
                    continue
                refusals += 1
                expected = 401 if principal["kind"] == "anonymous" else 403
                body = response.json()
                if status != expected or body.get("error") not in ("permission_denied", "not_authenticated"):
                    failures.append(
                        f"{who} {method} {route} ({action}): {status} {body}, expected {expected}"
                    )
                elif snapshot(organization, stripe_emulator) != before:
                    failures.append(f"{who} {method} {route} ({action}): refused, but something changed")
    assert not failures, "\n".join(failures)
    assert refusals > 100 and checked >= len(routes) * len(callers)


def test_a_tenant_can_never_create_credits(billing_org, stripe_emulator):
    """The endpoints that add value, by name: whatever a tenant (any role, any organization key)
    sends, the balance stays what it paid for."""
    organization = billing_org
    credit_grant(organization=organization, amount=10, reference="paid")
    used = credit_consume(organization=organization, amount=4).transaction
    base = f"/api/v1/organizations/{organization.id}/credits"
    attempts = [
        ("post", f"{base}/grant", {"amount": "1000", "reason": "free money", "idempotency_key": "x1"}),
        (
            "post",
            f"{base}/grant",
            {"amount": "1000", "reason": "x", "source": "promo", "idempotency_key": "x2"},
        ),
        ("post", f"{base}/transactions/{used.pk}/reverse", {"reason": "undo"}),
    ]
    callers = {k: v for k, v in principals(organization).items() if v["kind"] == "tenant"}
    for who, principal in callers.items():
        for method, path, payload in attempts:
            response = getattr(principal["client"], method)(path, payload, format="json")
            assert response.status_code == 403, (who, path, response.status_code)
    assert CreditAccount.objects.get(organization=organization).balance == 6


def test_platform_key_reaches_any_organization_only_within_its_scopes(billing_org, catalogue):
    from billing.services import organization_create

    other = organization_create(name="Other", billing_email="o@example.com")
    reader = APIClient()
    reader.credentials(
        HTTP_AUTHORIZATION=f"Bearer {platform_key_create(name='r', scopes=['organizations:read']).raw_key}"
    )
    for org in (billing_org, other):
        assert reader.get(f"/api/v1/organizations/{org.id}").status_code == 200
        assert reader.get(f"/api/v1/organizations/{org.id}/credits").status_code == 200
    listed = reader.get("/api/v1/organizations").json()
    assert {row["id"] for row in listed["results"]} >= {str(billing_org.id), str(other.id)}
    consumer = APIClient()
    consumer.credentials(
        HTTP_AUTHORIZATION=f"Bearer {platform_key_create(name='c', scopes=['credits:consume']).raw_key}"
    )
    assert consumer.get(f"/api/v1/organizations/{other.id}/credits").status_code == 403
    assert consumer.get("/api/v1/organizations").status_code == 403
    assert consumer.post("/api/v1/organizations", {"name": "x", "billing_email": "x@x.x"}).status_code == 403
    missing = "00000000-0000-4000-8000-000000000000"
    assert reader.get(f"/api/v1/organizations/{missing}").status_code == 404


def test_a_revoked_platform_key_is_refused(billing_org):
    from billing.services import api_key_revoke

    created = platform_key_create(name="r", scopes=["organizations:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.raw_key}")
    assert client.get(f"/api/v1/organizations/{billing_org.id}").status_code == 200
    api_key_revoke(api_key=created.platform_key)
    response = client.get(f"/api/v1/organizations/{billing_org.id}")
    assert response.status_code == 401 and response.json()["error"] == "not_authenticated"


def test_a_view_must_name_the_action_of_every_write():
    with pytest.raises(TypeError, match="must name the action of POST"):

        class Careless(OrganizationApi):
            def post(self, request, org):  # pragma: no cover - never served
                return None

"""Who may do what on the tenant pages: every page URL under `/billing/<org>/`, found from the URL
patterns (a new page is covered without new test code), every method, every role, staff and a
stranger. Each page view names the action of its methods (`billing.pages.organization_page`);
the expected answer per action and role is written out here."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from billing.models import Role
from invoices.models import Invoice
from tests.billing.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

MINIMUM = {"read": Role.MEMBER, "pay": Role.BILLING, "manage": Role.ADMIN}
RANK = {Role.MEMBER: 0, Role.BILLING: 1, Role.ADMIN: 2, Role.OWNER: 3}


def page_routes() -> list[tuple[str, object]]:
    found = []

    def walk(patterns, prefix):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern) and hasattr(entry.callback, "page_actions"):
                found.append((prefix + str(entry.pattern), entry.callback))

    walk(get_resolver().url_patterns, "/")
    return found


def test_every_organization_page_is_found():
    routes = [route for route, _ in page_routes()]
    assert len(routes) >= 15, routes
    assert all("<uuid:org>" in route for route in routes)
    assert "/billing/<uuid:org>/credits/transactions.csv" in routes
    assert "/billing/<uuid:org>/invoices/<uuid:invoice_id>/send" in routes


def test_every_page_every_method_every_role(client, billing_org, stripe_emulator):
    people = {role: MembershipFactory(organization=billing_org, role=role).user for role in RANK}
    stranger, staff = UserFactory(), UserFactory(is_staff=True)
    invoice = Invoice.objects.create(
        organization=billing_org, kind="stripe", status="open", number="WALK-0001", total=100,
        stripe_id="in_walk_0001",
        created_at=timezone.now(),
    )  # fmt: skip
    failures = []
    for route, view in page_routes():
        path = (
            route.replace("<uuid:org>", str(billing_org.id))
            .replace("<str:pm>", "pm_unknown")
            .replace("<uuid:invoice_id>", str(invoice.pk))
        )
        for method in ("get", "post"):
            action = view.page_actions.get(method.upper()) or ("read" if method == "get" else None)
            for who, user in [*people.items(), ("stranger", stranger), ("staff", staff)]:
                client.force_login(user)
                status = getattr(client, method)(path).status_code
                if who == "stranger":
                    expected_ok, why = status == 404, "404 for a stranger"
                elif action is None:
                    expected_ok, why = status == 405, "405: the page takes no POST"
                elif who == "staff" or RANK[who] >= RANK[MINIMUM[action]]:
                    expected_ok, why = status not in (403, 404, 500), f"{action} allowed"
                else:
                    expected_ok, why = status == 403, f"403 without {action}"
                if not expected_ok:
                    failures.append(f"{method.upper()} {route} as {who}: {status}, expected {why}")
    assert not failures, "\n".join(failures)

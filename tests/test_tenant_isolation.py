"""Walks every URL pattern under /api/v1/organizations/<org>/ and checks that organization A's
people and keys get 404 for organization B's id, with every method the view allows.

Endpoints added later are covered without new test code."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from billing.models import Role
from billing.services import api_key_create
from tests.billing.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

PREFIX = "api/v1/organizations/<uuid:org>"
DUMMY = {
    "uuid": lambda: str(uuid.uuid4()),
    "int": lambda: "1",
    "slug": lambda: "x",
    "str": lambda: "x",
    "path": lambda: "x",
}


def walk(patterns, prefix: str = ""):
    for p in patterns:
        route = prefix + str(p.pattern)
        if isinstance(p, URLResolver):
            yield from walk(p.url_patterns, route)
        elif isinstance(p, URLPattern):
            yield route, p


def organization_routes():
    routes = []
    for route, pattern in walk(get_resolver().url_patterns):
        if route == PREFIX or route.startswith(PREFIX + "/"):
            routes.append((route, pattern))
    return routes


def build_path(route: str, org_id) -> str:
    def fill(match):
        converter, name = match.group(1) or "str", match.group(2)
        return str(org_id) if name == "org" else DUMMY[converter]()

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def allowed_methods(pattern: URLPattern) -> list[str]:
    view_class = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
    assert view_class is not None, f"{pattern} is not a class-based view: isolation cannot be checked"
    return [
        m.upper()
        for m in view_class.http_method_names
        if m not in ("options", "head") and hasattr(view_class, m)
    ]


def callers(org_a):
    owner = MembershipFactory(organization=org_a, role=Role.OWNER).user
    session = APIClient()
    session.force_authenticate(owner)
    key = APIClient()
    key.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(organization=org_a, name='a').raw_key}")
    return {"owner session": session, "admin api key": key}


def test_every_organization_endpoint_hides_other_tenants():
    routes = organization_routes()
    assert len(routes) >= 3, f"found only {routes}: the walker is not finding the organization endpoints"
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    checked = 0
    failures = []
    for who, client in callers(org_a).items():
        for route, pattern in routes:
            for method in allowed_methods(pattern):
                path = build_path(route, org_b.id)
                response = client.generic(method, path, data="{}", content_type="application/json")
                checked += 1
                body = (
                    response.json() if response.get("Content-Type", "").startswith("application/json") else {}
                )
                if response.status_code != 404 or body.get("error") != "not_found":
                    failures.append(f"{who} {method} {path} -> {response.status_code} {body}")
    assert not failures, "\n".join(failures)
    assert checked >= 2 * len(routes)


def test_the_same_endpoints_answer_the_own_organization():
    """Guards the walker itself: with A's own id the answer is never a tenant 404."""
    org_a = OrganizationFactory()
    client = callers(org_a)["owner session"]
    for route, pattern in organization_routes():
        if "<" in route[len(PREFIX) :]:
            continue  # other ids in the path are dummies; a 404 for those is right
        for method in allowed_methods(pattern):
            if method != "GET":
                continue
            response = client.get(build_path(route, org_a.id))
            assert response.status_code != 404, f"GET {route} -> 404 for the caller's own organization"

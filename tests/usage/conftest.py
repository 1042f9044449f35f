"""Fixtures of the usage tests. After every test that touched the database, the credit ledger's
invariants (holds included) and the rollups against the raw events are checked, as
`manage.py reconcile` and `manage.py usage_drift` do."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Plan, Role
from credits.selectors import ledger_drift_list
from credits.services import credit_grant
from tests.billing.factories import MembershipFactory, OrganizationFactory
from usage import counters
from usage.services import usage_rollup_drift_list


def seed_catalogues() -> None:
    """The rows the migrations seed (plans, credit prices, metrics): a test that flushes the
    database (`transaction=True`) loses them."""
    import importlib

    from django.apps import apps

    from billing.catalogue import catalogue_seed, metered_prices_seed
    from billing.models import PlanMeteredPrice, PlanPrice

    catalogue_seed(Plan, PlanPrice)
    metered_prices_seed(Plan, PlanMeteredPrice)
    importlib.import_module("credits.migrations.0003_seed_catalogue").seed(apps, None)
    importlib.import_module("usage.migrations.0002_seed_metrics").seed(apps, None)


@pytest.fixture(autouse=True)
def _seeded(request):
    if request.node.get_closest_marker("django_db") is not None:
        from usage.models import Metric

        if not Metric.objects.exists():
            seed_catalogues()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """The users these tests make never log in with a password: hash it cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_counters():
    counters.reset()
    yield
    counters.reset()


@pytest.fixture(autouse=True)
def _usage_invariants(request):
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker is None or "allow_usage_drift" in request.fixturenames:
        return
    report = ledger_drift_list()
    assert report.clean, "ledger drift after the test:\n" + "\n".join(map(str, report.drifts))
    drift = usage_rollup_drift_list(since=timezone.now() - timedelta(days=60))
    assert not drift, "rollup drift after the test:\n" + "\n".join(drift)


@pytest.fixture
def allow_usage_drift():
    return True


def plan_with_limits(code: str = "metered-test", **limits) -> Plan:
    """A plan with these limits (metric code -> int or None)."""
    plan, _ = Plan.objects.update_or_create(code=code, defaults={"name": code, "limits": limits})
    return plan


def organization_on(plan: Plan, credits: Decimal | int | None = None):
    """An organization whose applicable plan is `plan` (an active subscription status)."""
    org = OrganizationFactory(plan=plan, subscription_status="active")
    if credits:
        credit_grant(organization=org, amount=credits, source="purchase", reference=f"seed-{org.pk}")
    return org


def admin_client_of(org) -> APIClient:
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=org, role=Role.ADMIN).user)
    return client


def url(org, path: str = "") -> str:
    return f"/api/v1/organizations/{org.pk}/usage{path}"

"""Fixtures of the reliability list (tests/reliability/test_NN_*.py, one module per item)."""

from __future__ import annotations

import pytest

from billing.models import Organization

from .helpers import subscribe


@pytest.fixture(autouse=True)
def _seeded(request):
    """Transactional tests flush the database, and with it the rows the migrations seed (plans,
    metered prices, credit prices, metrics): put them back for the tests that follow."""
    if request.node.get_closest_marker("django_db") is not None:
        from usage.models import Metric

        if not Metric.objects.exists():
            from tests.usage.conftest import seed_catalogues

            seed_catalogues()


@pytest.fixture
def business(billing_org, webhooks, django_capture_on_commit_callbacks):
    """An organization on Business (SMS past 100,000 billed through a Stripe meter), paid by card."""
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(billing_org, plan="business")
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.plan.code == "business" and org.subscription_status == "active"
    return org

"""Fixtures of the back-office tests: staff users in the Django test client (the admin is a
session-authenticated site), an organization with a subscription and a credit purchase made
through the Stripe emulator."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from billing.models import AuditEntry
from tests.billing.factories import UserFactory


@pytest.fixture
def superuser(db):
    return UserFactory(is_staff=True, is_superuser=True, email="boss@staff.test")


@pytest.fixture
def web(superuser) -> Client:
    """The admin as a superuser (Django's test client, not DRF's)."""
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def viewer_web(db) -> Client:
    """Staff who may look (view organization pages) but not act."""
    user = UserFactory(is_staff=True, email="viewer@staff.test")
    user.user_permissions.add(Permission.objects.get(codename="view_organizationpage"))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def pack(db):
    from credits.models import CreditPack

    pack, _ = CreditPack.objects.update_or_create(
        code="p1k", defaults={"name": "1,000 credits", "credits": Decimal(1000), "amount": 1000}
    )
    return pack


@pytest.fixture
def audit_count():
    return lambda: AuditEntry.objects.count()


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks, celery_eager):
    """`with after_commit(): ...` runs the on-commit callbacks (and the enqueued tasks) at the end."""
    return lambda: django_capture_on_commit_callbacks(execute=True)

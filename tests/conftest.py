"""Fixtures shared by the whole suite.

Every test gets a fresh in-process Stripe emulator installed into stripe-python (and so into
dj-stripe): no test can reach a real Stripe host, and each starts from a clean Stripe state.
"""

from __future__ import annotations

import pytest
import stripe
from django.core.cache import cache
from rest_framework.test import APIClient

from billing.catalogue import catalogue_seed
from billing.models import Membership, Plan, PlanPrice, Role
from billing.services import api_key_create, organization_create, platform_key_create, stripe_catalog_sync
from config.celery import app as celery_app
from tests.billing.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.stripe_helpers import Recorder, webhooks_install

pytest_plugins = ["stripe_emulator.testing"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, django_db_blocker) -> None:
    """Create the (fresh) test database from a migrated template: see tests/db_template.py."""
    from django.conf import settings

    from tests.db_template import ensure_template

    with django_db_blocker.unblock():
        template = ensure_template()
    settings.DATABASES["default"].setdefault("TEST", {})["TEMPLATE"] = template


@pytest.fixture(scope="session")
def migrated_template(django_db_setup) -> str:
    from django.conf import settings

    return settings.DATABASES["default"]["TEST"]["TEMPLATE"]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters and other cached state never leak between tests."""
    from usage.selectors import catalog_cache_clear

    cache.clear()
    catalog_cache_clear()
    yield


@pytest.fixture(autouse=True)
def _stripe(stripe_emulator):
    """The emulator for every test; stripe-python fails fast instead of retrying."""
    retries = stripe.max_network_retries
    stripe.max_network_retries = 0
    yield stripe_emulator
    stripe.max_network_retries = retries


@pytest.fixture
def celery_eager():
    """Tasks run in-process when enqueued (tests that need a real worker use tests.processes)."""
    saved = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = saved


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def organization(db):
    return OrganizationFactory()


@pytest.fixture
def owner(organization):
    return MembershipFactory(organization=organization, role=Role.OWNER).user


@pytest.fixture
def owner_client(owner) -> APIClient:
    client = APIClient()
    client.force_authenticate(owner)
    return client


@pytest.fixture
def admin_client(organization) -> APIClient:
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=organization, role=Role.ADMIN).user)
    return client


@pytest.fixture
def platform_client(db):
    """`platform_client(scopes)`: a client authenticated with a new platform key holding them."""

    def make(*scopes: str) -> APIClient:
        created = platform_key_create(name="test platform key", scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {created.raw_key}")
        return client

    return make


@pytest.fixture
def staff_client(db) -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


@pytest.fixture
def member_client(organization) -> APIClient:
    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=organization, role=Role.MEMBER).user)
    return client


@pytest.fixture
def api_key(organization):
    return api_key_create(organization=organization, name="test key")


@pytest.fixture
def key_client(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key.raw_key}")
    return client


# --------------------------------------------------------------------------- Stripe-backed fixtures
@pytest.fixture
def catalogue(db):
    """The seed plans, synced to the emulator (tests that flush the database lose the seeds)."""
    catalogue_seed(Plan, PlanPrice)
    stripe_catalog_sync()
    return {plan.code: plan for plan in Plan.objects.prefetch_related("prices")}


@pytest.fixture
def billing_owner(db):
    return UserFactory()


@pytest.fixture
def billing_org(catalogue, billing_owner):
    """An organization set up the way the API sets one up: with its Stripe customer."""
    return organization_create(name="Acme", billing_email="billing@acme.test", owner=billing_owner)


@pytest.fixture
def billing_client(billing_org, billing_owner):
    client = APIClient()
    client.force_authenticate(billing_owner)
    return client


@pytest.fixture
def billing_member_client(billing_org):
    user = UserFactory()
    Membership.objects.create(user=user, organization=billing_org, role=Role.MEMBER)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def webhooks(stripe_emulator, client, catalogue, celery_eager):
    return webhooks_install(stripe_emulator, client)


@pytest.fixture
def recorder(webhooks, stripe_emulator) -> Recorder:
    """Keeps what the emulator would deliver, to replay by hand (several times, reordered, tampered)."""
    rec = Recorder()
    stripe_emulator.set_webhook_transport(rec)
    return rec

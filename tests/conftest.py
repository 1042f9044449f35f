"""Fixtures shared by the whole suite.

Every test gets a fresh in-process Stripe emulator installed into stripe-python (and so into
dj-stripe): no test can reach a real Stripe host, and each starts from a clean Stripe state.
"""

from __future__ import annotations

import os

import pytest
import stripe
from django.core.cache import cache
from rest_framework.test import APIClient

from billing.catalogue import catalogue_seed
from billing.models import Membership, Plan, PlanPrice, Role
from billing.services import api_key_create, organization_create, platform_key_create, stripe_catalog_sync
from config.celery import app as celery_app
from stripe_emulator.spec import conformance
from tests.billing.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.stripe_helpers import Recorder, webhooks_install

pytest_plugins = ["stripe_emulator.testing"]


def pytest_configure(config) -> None:
    """Every response and webhook payload any in-process emulator serves during the run is checked
    against stripe-python's types (`stripe_emulator/spec/conformance.py`)."""
    conformance.enable()


def pytest_collection_modifyitems(config, items) -> None:
    """`stripe_live` tests talk to real Stripe in test mode: without STRIPE_LIVE_SECRET_KEY they are
    deselected (not skipped), so a normal run reports no skips."""
    if os.environ.get("STRIPE_LIVE_SECRET_KEY"):
        return
    live = [item for item in items if item.get_closest_marker("stripe_live")]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [item for item in items if not item.get_closest_marker("stripe_live")]


def pytest_sessionfinish(session, exitstatus) -> None:
    """The run fails when the emulator served anything Stripe's types do not describe."""
    recorder = conformance.RECORDER
    if recorder is None:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if recorder.found:
        if reporter is not None:
            reporter.write_line("Stripe conformance: " + recorder.report(), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None and recorder.checked:
        reporter.write_line(f"Stripe conformance: {recorder.checked} emulator payloads, no violation.")


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


@pytest.fixture
def allow_ledger_drift():
    """This test leaves drift behind on purpose; skip the after-test invariant check."""
    return True


@pytest.fixture(autouse=True)
def _ledger_invariants(request):
    """After every test that touched the database, anywhere in the suite, the credit ledger's
    invariants hold: the same checks as `manage.py reconcile` (without Stripe)."""
    yield
    uses_db = request.node.get_closest_marker("django_db") is not None or {
        "db",
        "transactional_db",
    } & set(request.fixturenames)
    if not uses_db or "allow_ledger_drift" in request.fixturenames:
        return
    from credits.selectors import ledger_drift_list

    report = ledger_drift_list()
    assert report.clean, "ledger drift after the test:\n" + "\n".join(map(str, report.drifts))


@pytest.fixture(autouse=True)
def _clear_cache():
    """Throttle counters and other cached state never leak between tests."""
    from billing import key_cache
    from config import task_outbox, throttling
    from usage.selectors import catalog_cache_clear

    cache.clear()
    catalog_cache_clear()
    throttling.reset()
    task_outbox.reset()
    key_cache.clear()
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

import pytest

from billing.catalogue import catalogue_seed
from billing.models import Membership, Plan, PlanPrice, Role
from billing.services import organization_create, stripe_catalog_sync
from tests.billing.factories import UserFactory
from tests.stripe_helpers import webhooks_install


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
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(billing_owner)
    return client


@pytest.fixture
def billing_member_client(billing_org):
    from rest_framework.test import APIClient

    user = UserFactory()
    Membership.objects.create(user=user, organization=billing_org, role=Role.MEMBER)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def webhooks(stripe_emulator, client, catalogue, celery_eager):
    return webhooks_install(stripe_emulator, client)

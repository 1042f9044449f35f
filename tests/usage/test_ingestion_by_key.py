"""`POST /usage/events` with an organization API key: the organization is known by its id only
(`billing.selectors.LazyOrganization`), so the quota context reads its plan, status and
subscription by id (`usage.selectors.quota_context_for_ingestion`) instead of the whole row."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone
from django.utils.functional import empty
from rest_framework.test import APIClient

from billing.models import Organization
from billing.selectors import LazyOrganization
from billing.services import api_key_create
from config.exceptions import NotFound
from usage import counters
from usage.models import UsageEvent
from usage.selectors import metric_get, quota_context, quota_context_for_ingestion

from .conftest import organization_on, plan_with_limits, url

pytestmark = pytest.mark.django_db


def key_client(org) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(organization=org, name='k').raw_key}")
    return client


def test_the_quota_context_by_id_equals_the_one_from_the_row(organization):
    plan = plan_with_limits(SMS_SENT=100)
    org = organization_on(plan)
    now = timezone.now()
    lazy = LazyOrganization(org.pk)
    by_id = quota_context_for_ingestion(organization=lazy, now=now)
    assert lazy._wrapped is empty  # the organization's row was not read through the ORM
    assert by_id == quota_context(organization=org, now=now)
    assert by_id.plan.pk == plan.pk and by_id.limit("SMS_SENT") == Decimal(100)
    # Not on the plan any more (no entitled status): the free plan, as `quota_context` says.
    Organization.objects.filter(pk=org.pk).update(subscription_status="canceled")
    org.refresh_from_db()
    assert quota_context_for_ingestion(organization=LazyOrganization(org.pk), now=now) == quota_context(
        organization=org, now=now
    )


def test_a_batch_by_key_counts_against_the_plan_and_answers_as_before(organization):
    org = organization_on(plan_with_limits(SMS_SENT=10))
    client = key_client(org)
    events = [{"metric": "SMS_SENT", "quantity": 3, "idempotency_key": f"k{i}"} for i in range(3)]
    response = client.post(url(org, "/events"), {"events": events}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    # The counter the quota check reads moved with the batch (9 of 10).
    ctx = quota_context(organization=org, now=timezone.now())
    info = metric_get(code="SMS_SENT")
    (current,) = counters.get_many([counters.key(org.pk, info.id, ctx.hour_from)])
    assert current == Decimal(9)
    again = client.post(url(org, "/events"), {"events": events}, format="json")
    assert again.json() == {"accepted": 0, "duplicates": 3, "rejected": []}
    total = UsageEvent.objects.filter(organization_id=org.pk).aggregate(q=Sum("quantity"))["q"]
    assert total == Decimal(9)


@pytest.mark.parametrize("payload", [{}, {"events": []}, {"events": {"a": 1}}, [1], {"events": [{}] * 1001}])
def test_a_bad_batch_by_key_is_the_same_400(organization, payload):
    response = key_client(organization).post(url(organization, "/events"), payload, format="json")
    assert response.status_code == 400 and response.json()["error"] == "validation_error"


def test_an_organization_gone_by_id_is_not_found():
    with pytest.raises(NotFound):
        quota_context_for_ingestion(organization=LazyOrganization(uuid.uuid4()), now=timezone.now())


def test_a_subscribed_organizations_context_by_id_is_its_mirrored_period(
    billing_org, webhooks, django_capture_on_commit_callbacks
):
    """By id, the period comes from the few keys of the mirrored subscription the statement
    reads: the same period as from the whole row and object, inside it, after it (rolled
    forward) and before it (the calendar month)."""
    from datetime import timedelta

    from billing.selectors import organization_billing_period
    from billing.services import subscription_create

    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(
            organization=billing_org, plan="business", interval="month", payment_method="pm_card_visa",
            trial_days=0,
        )  # fmt: skip
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    start, end = organization_billing_period(organization=org, now=timezone.now())
    for now in (start + timedelta(days=1), end + timedelta(hours=5), start - timedelta(days=40)):
        by_id = quota_context_for_ingestion(organization=LazyOrganization(org.pk), now=now)
        assert by_id == quota_context(organization=org, now=now)
        assert by_id.plan.code == "business"


def test_a_track_by_key_reads_no_organization_row(organization):
    """`POST /usage/track` with an organization key: the quota context by id, and nothing else
    reads the organization's row either."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from credits.services import credit_grant

    org = organization_on(plan_with_limits(SMS_SENT=10))
    credit_grant(organization=org, amount=100, source="purchase", reference="t")
    client = key_client(org)
    client.post(url(org, "/track"), {"metric": "SMS_SENT", "idempotency_key": "warm"}, format="json")
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            url(org, "/track"), {"metric": "SMS_SENT", "idempotency_key": "t1"}, format="json"
        )
    assert response.status_code == 201, response.content
    table = Organization._meta.db_table
    assert not [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]

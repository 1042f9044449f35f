"""The back office: metrics editable, events and rollups read-only with filters, the sync state
with a "sync now" action that runs as a task."""

from __future__ import annotations

import pytest

from tests.billing.factories import UserFactory
from usage.models import Metric, SyncStatus, UsageSyncState
from usage.services import usage_events_record, usage_reservation_create

from .conftest import organization_on, plan_with_limits

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))


def test_metrics_are_editable_and_keep_one_vocabulary(client, staff):
    metric = Metric.objects.get(code="SMS_SENT")
    page = client.get(f"/admin/usage/metric/{metric.pk}/change/")
    assert page.status_code == 200
    form = {
        "code": "SMS_SENT",
        "name": "Text messages",
        "description": "",
        "unit": "message",
        "aggregation": "sum",
        "credit_price": "SMS_SENT",
        "stripe_meter_event_name": "sms_sent",
        "active": "on",
        "sort_order": 0,
    }
    assert client.post(f"/admin/usage/metric/{metric.pk}/change/", form).status_code == 302
    assert Metric.objects.get(pk=metric.pk).name == "Text messages"
    refused = client.post(f"/admin/usage/metric/{metric.pk}/change/", {**form, "credit_price": "AI_TOKENS"})
    assert refused.status_code == 200 and b"credit price named by its own code" in refused.content
    assert Metric.objects.get(pk=metric.pk).credit_price_id == "SMS_SENT"


def test_events_and_rollups_are_read_only_lists_with_filters(client, staff):
    org = organization_on(plan_with_limits(), credits=100)
    usage_events_record(
        organization=org, events=[{"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "admin-evt"}]
    )
    sms = Metric.objects.get(code="SMS_SENT")
    events = client.get(
        "/admin/usage/usageeventrow/", {"organization": str(org.pk), "metric__id__exact": sms.pk}
    )
    assert events.status_code == 200 and b"admin-evt" in events.content
    assert client.get("/admin/usage/usageeventrow/", {"q": str(org.pk)}).status_code == 200
    assert client.get("/admin/usage/usageeventrow/add/").status_code == 403
    rollups = client.get("/admin/usage/usagerolluprow/", {"organization": str(org.pk)})
    assert rollups.status_code == 200 and b"SMS_SENT" in rollups.content
    usage_reservation_create(
        organization=org, metric="AI_MESSAGE_GENERATED", estimated_quantity=1, idempotency_key="h"
    )
    holds = client.get("/admin/credits/credithold/", {"status": "held"})
    assert holds.status_code == 200 and b"AI_MESSAGE_GENERATED" in holds.content


def test_sync_now_queues_the_task_and_the_list_shows_progress(
    client, staff, organization, celery_eager, django_capture_on_commit_callbacks
):
    state = UsageSyncState.objects.create(organization=organization, progress_done=3, progress_total=7)
    page = client.get("/admin/usage/usagesyncstate/")
    assert page.status_code == 200 and b"3/7" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/usage/usagesyncstate/",
            {"action": "sync_now", "_selected_action": [str(state.pk)]},
            follow=True,
        )
    assert b"Meter sync queued for 1" in response.content
    state.refresh_from_db()
    # The task ran (eagerly): an organization without a metered subscription has nothing to send.
    assert state.status == SyncStatus.IDLE and state.last_success_at is not None

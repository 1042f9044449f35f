"""The events table is partitioned by month; partitions are made ahead, rows that reached the
default partition move into the month's partition, old months can be detached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from usage.models import UsageEvent, UsageRollup
from usage.partitions import (
    add_months,
    month_start,
    partition_detach,
    partition_name,
    partitions_ensure,
    partitions_list,
)
from usage.services import usage_events_record
from usage.tasks import partitions_ensure_task

pytestmark = pytest.mark.django_db


def partition_of(event_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM usage_usageevent WHERE id = %s", [event_id])
        return cursor.fetchone()[0]


def test_the_table_is_partitioned_by_month_with_months_ahead(organization):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'usage_usageevent'::regclass"
        )
        assert cursor.fetchone() == ("r",)
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indrelid = 'usage_usageevent'::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)"
        )
        assert [r[0] for r in cursor.fetchall()] == ["organization_id", "occurred_at", "id"]
    now = timezone.now()
    # The migrations create the months ahead of the day they ran, the beat task keeps them ahead:
    # run it first, as a database made before the turn of a month needs.
    partitions_ensure_task()
    names = partitions_list()
    for offset in range(0, 4):
        assert partition_name(add_months(month_start(now), offset)) in names
    assert partitions_ensure_task() == []  # already there
    result = usage_events_record(
        organization=organization, events=[{"metric": "SMS_SENT", "idempotency_key": "a"}]
    )
    (event_id,) = result.event_ids.values()
    assert partition_of(event_id) == partition_name(month_start(now))


def test_rows_in_the_default_partition_move_into_a_new_month(organization, allow_usage_drift):
    """(The row is written by hand, without its rollup: the drift check is off.)"""
    far = datetime(2031, 5, 17, 12, tzinfo=UTC)
    with connection.cursor() as cursor:  # as if the beat task had not run for years
        cursor.execute(
            "INSERT INTO usage_usageevent (organization_id, occurred_at, id, metric_id, quantity, "
            "recorded_at, idempotency_key) SELECT %s, %s, gen_random_uuid(), id, 1, now(), 'far' "
            "FROM usage_metric WHERE code = 'SMS_SENT'",
            [organization.pk, far],
        )
    (event,) = UsageEvent.objects.filter(organization_id=organization.pk)
    assert partition_of(event.id) == "usage_usageevent_default"
    created = partitions_ensure(now=far, months_back=0, months_ahead=0)
    assert created == ["usage_usageevent_203105"]
    assert partition_of(event.id) == "usage_usageevent_203105"
    assert UsageEvent.objects.filter(organization_id=organization.pk).count() == 1


def test_an_old_month_can_be_detached_and_the_rollups_keep_its_totals(organization, allow_usage_drift):
    old = timezone.now() - timedelta(days=34)
    usage_events_record(
        organization=organization,
        events=[
            {"metric": "SMS_SENT", "quantity": 5, "idempotency_key": "old", "occurred_at": old.isoformat()}
        ],
    )
    assert month_start(old) < month_start(timezone.now())  # months are at most 31 days long
    assert partition_detach(month=old) == partition_name(month_start(old))
    assert partition_name(month_start(old)) not in partitions_list()
    assert not UsageEvent.objects.filter(organization_id=organization.pk).exists()
    assert UsageRollup.objects.get(organization_id=organization.pk).quantity == 5
    assert partition_detach(month=old) is None

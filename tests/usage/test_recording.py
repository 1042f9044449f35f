"""Recording events in bulk: per-index results, idempotency, rollups in step."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from usage.models import UsageDimensionRollup, UsageEvent, UsageEventKey, UsageRollup
from usage.services import usage_events_record, usage_record

from .conftest import admin_client_of, organization_on, plan_with_limits, url

pytestmark = pytest.mark.django_db


def batch_of_1000():
    """1,000 events: 10 repeat an earlier key (same event), 5 are invalid in different ways."""
    now = timezone.now()
    events = []
    for i in range(985):
        events.append(
            {
                "metric": "SMS_SENT" if i % 3 else "AI_TOKENS",
                "quantity": 1 if i % 3 else 120,
                "idempotency_key": f"evt-{i}",
                "occurred_at": (now - timedelta(minutes=i)).isoformat(),
                "user_id": f"user-{i % 7}",
                "resource_type": "message",
                "resource_id": f"msg-{i}",
                "dimensions": {"platform": ["ios", "android", "web"][i % 3], "message_type": "promo"},
            }
        )
    duplicates = [dict(events[i * 50]) for i in range(10)]
    invalid = [
        {"metric": "NO_SUCH_METRIC", "quantity": 1, "idempotency_key": "bad-1"},
        {"metric": "SMS_SENT", "quantity": -3, "idempotency_key": "bad-2"},
        {
            "metric": "SMS_SENT",
            "quantity": 1,
            "idempotency_key": "bad-3",
            "occurred_at": (now - timedelta(days=36)).isoformat(),
        },
        {
            "metric": "SMS_SENT",
            "quantity": 1,
            "idempotency_key": "bad-4",
            "occurred_at": (now + timedelta(minutes=6)).isoformat(),
        },
        {"metric": "SMS_SENT", "quantity": 1, "idempotency_key": "bad-5", "dimensions": {"nested": {"a": 1}}},
    ]
    return events[:400] + duplicates[:5] + invalid[:3] + events[400:] + duplicates[5:] + invalid[3:]


def test_a_batch_of_1000_with_duplicates_and_invalid_events(organization):
    events = batch_of_1000()
    response = admin_client_of(organization).post(
        url(organization, "/events"), {"events": events}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["accepted"] == 985
    assert body["duplicates"] == 10
    rejected = {r["index"]: r for r in body["rejected"]}
    assert len(rejected) == 5
    codes = sorted(r["error"] for r in rejected.values())
    assert codes == ["in_future", "invalid_dimensions", "invalid_quantity", "too_old", "unknown_metric"]
    assert all(events[i]["idempotency_key"].startswith("bad-") for i in rejected)
    assert all(r["message"] for r in rejected.values())

    def totals():
        return (
            UsageEvent.objects.filter(organization_id=organization.pk).count(),
            UsageRollup.objects.filter(organization_id=organization.pk).aggregate(
                q=Sum("quantity"), e=Sum("events")
            ),
            UsageDimensionRollup.objects.filter(organization_id=organization.pk, key="platform").aggregate(
                e=Sum("events")
            ),
        )

    first = totals()
    assert first[0] == 985
    assert first[1]["e"] == 985
    assert first[2]["e"] == 985
    assert first[1]["q"] == sum(1 if i % 3 else 120 for i in range(985))

    again = (
        admin_client_of(organization)
        .post(url(organization, "/events"), {"events": events}, format="json")
        .json()
    )
    assert again["accepted"] == 0
    assert again["duplicates"] == 995
    assert len(again["rejected"]) == 5
    assert totals() == first  # nothing double counted


def test_rollups_add_up_the_events_of_each_hour(organization):
    now = (timezone.now() - timedelta(hours=2)).replace(minute=30)
    events = [
        {
            "metric": "SMS_SENT",
            "quantity": q,
            "idempotency_key": f"k{i}",
            "occurred_at": (now - timedelta(hours=h)).isoformat(),
        }
        for i, (q, h) in enumerate([(1, 0), (2, 0), (3, 1), ("4.5", 1), (5, 30)])
    ]
    result = usage_events_record(organization=organization, events=events)
    assert result.accepted == 5
    rows = {
        r.hour: (r.quantity, r.events, r.quantity_max)
        for r in UsageRollup.objects.filter(organization_id=organization.pk)
    }
    hour = now.replace(minute=0, second=0, microsecond=0)
    assert rows[hour] == (Decimal(3), 2, Decimal(2))
    assert rows[hour - timedelta(hours=1)] == (Decimal("7.5"), 2, Decimal("4.5"))
    assert rows[hour - timedelta(hours=30)] == (Decimal(5), 1, Decimal(5))


def test_the_same_key_with_another_event_is_rejected_not_recorded(organization):
    usage_record(organization=organization, metric="SMS_SENT", quantity=2, idempotency_key="same")
    result = usage_events_record(
        organization=organization,
        events=[
            {"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "same"},
            {"metric": "SMS_SENT", "quantity": 2, "idempotency_key": "fresh"},
            {"metric": "SMS_SENT", "quantity": 9, "idempotency_key": "fresh"},
        ],
    )
    assert result.accepted == 1
    assert [(r.index, r.error) for r in result.rejected] == [
        (0, "idempotency_conflict"),
        (2, "idempotency_conflict"),
    ]
    assert UsageEvent.objects.filter(organization_id=organization.pk).aggregate(q=Sum("quantity"))["q"] == 4
    assert UsageEventKey.objects.filter(organization_id=organization.pk).count() == 2


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"events": []},
        {"events": "nope"},
        {"events": [{"metric": "SMS_SENT", "idempotency_key": "k"}] * 1001},
        {"events": None},
    ],
)
def test_a_bad_batch_is_a_400_and_records_nothing(organization, payload):
    response = admin_client_of(organization).post(url(organization, "/events"), payload, format="json")
    assert response.status_code == 400 and response.json()["error"] == "validation_error"
    assert not UsageEvent.objects.filter(organization_id=organization.pk).exists()


@pytest.mark.parametrize(
    "event",
    [
        "a string",
        7,
        None,
        [1, 2],
        {"metric": "SMS_SENT"},
        {"metric": "SMS_SENT", "idempotency_key": "x" * 256},
        {"metric": "SMS_SENT", "idempotency_key": "k", "quantity": "1e400"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "quantity": "NaN"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "quantity": "0.00001"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "quantity": True},
        {"metric": "SMS_SENT", "idempotency_key": "k", "quantity": "9" * 100},
        {"metric": "SMS_SENT", "idempotency_key": "k", "occurred_at": "yesterday"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "occurred_at": "2026-01-01T00:00:00"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "dimensions": {f"k{i}": i for i in range(21)}},
        {"metric": "SMS_SENT", "idempotency_key": "k", "dimensions": {"k": "v" * 256}},
        {"metric": "SMS_SENT", "idempotency_key": "k", "dimensions": ["a"]},
        {"metric": "SMS_SENT", "idempotency_key": "k", "user_id": {"id": 1}},
        {"metric": "SMS_SENT", "idempotency_key": "k\x00"},
        {"metric": ["SMS_SENT"], "idempotency_key": "k"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "colour": "red"},
    ],
)
def test_each_bad_event_is_rejected_with_a_reason_and_the_others_recorded(organization, event):
    events = [
        {"metric": "SMS_SENT", "idempotency_key": "good-1"},
        event,
        {"metric": "SMS_SENT", "idempotency_key": "good-2"},
    ]
    response = admin_client_of(organization).post(
        url(organization, "/events"), {"events": events}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1]
    assert body["rejected"][0]["error"] and body["rejected"][0]["message"]


def test_usage_counts_in_the_plan_period_and_get_usage_shows_it(organization):
    plan = plan_with_limits(SMS_SENT=100, AI_TOKENS=None)
    org = organization_on(plan)
    usage_events_record(
        organization=org,
        events=[
            {"metric": "SMS_SENT", "quantity": 85, "idempotency_key": "a"},
            {"metric": "AI_TOKENS", "quantity": 5000, "idempotency_key": "b"},
        ],
    )
    body = admin_client_of(org).get(url(org)).json()
    rows = {row["metric"]: row for row in body["usage"]}
    assert rows["SMS_SENT"] == {
        "metric": "SMS_SENT",
        "name": "SMS sent",
        "unit": "message",
        "current": "85",
        "limit": "100",
        "percentage": 85.0,
        "unlimited": False,
        "soft_limit_warning": True,
        "limit_reached": False,
        "overage_billed": False,
    }
    assert rows["AI_TOKENS"]["unlimited"] is True and rows["AI_TOKENS"]["current"] == "5000"
    assert rows["CALL_MADE"]["current"] == "0"


def test_values_are_stored_exactly_whichever_way_the_statement_binds_them(organization):
    """The statement binds a batch as texts separated by U+001E, or as arrays when a value holds
    that character; a batch of one with empty optional fields too. The rows hold what was sent."""
    now = timezone.now().replace(microsecond=123456)
    sent = [
        {"metric": "SMS_SENT", "quantity": "2.5", "idempotency_key": "plain", "occurred_at": now.isoformat()},
        {
            "metric": "AI_TOKENS", "quantity": 1000000000000, "idempotency_key": "with\x1esep",
            "user_id": "u\x1e1", "resource_type": "", "resource_id": "r,{\"}\\",
            "dimensions": {"platform": "a\x1eb", "n": 3, "ok": True, "none": None},
            "occurred_at": (now - timedelta(days=34)).isoformat(),
        },
        {"metric": "API_REQUEST", "idempotency_key": "éé\u2028", "user_id": "", "dimensions": {"k": "NULL"}},
    ]  # fmt: skip
    for events in ([sent[0]], [sent[2]], sent[:1] + sent[2:], sent):
        assert usage_events_record(organization=organization, events=events).rejected == []
    stored = {e.idempotency_key: e for e in UsageEvent.objects.filter(organization_id=organization.pk)}
    assert set(stored) == {"plain", "with\x1esep", "éé\u2028"}
    assert stored["plain"].quantity == Decimal("2.5") and stored["plain"].occurred_at == now
    odd = stored["with\x1esep"]
    assert (odd.quantity, odd.user_id, odd.resource_type, odd.resource_id) == (
        Decimal(10**12),
        "u\x1e1",
        "",
        'r,{"}\\',
    )
    assert odd.dimensions == {"platform": "a\x1eb", "n": 3, "ok": True, "none": None}
    assert odd.occurred_at == now - timedelta(days=34)
    assert stored["éé\u2028"].user_id == "" and stored["éé\u2028"].dimensions == {"k": "NULL"}
    assert UsageEventKey.objects.filter(organization_id=organization.pk).count() == 3


def test_a_late_replay_of_a_recorded_event_is_a_duplicate(organization):
    """A client retrying an event that is now outside the window (35 days back, 5 minutes ahead)
    gets the duplicate it would have got before; another event under its key, or a new key, is
    refused for its time."""
    import time_machine

    start = timezone.now()
    event = {
        "metric": "SMS_SENT", "quantity": 2, "idempotency_key": "late-1",
        "occurred_at": (start - timedelta(days=34)).isoformat(),
    }  # fmt: skip
    assert usage_events_record(organization=organization, events=[event]).accepted == 1
    with time_machine.travel(start + timedelta(days=2), tick=False):
        replay = usage_events_record(organization=organization, events=[dict(event)])
        assert (replay.accepted, replay.duplicates, replay.rejected) == (0, 1, [])
        other = usage_events_record(
            organization=organization,
            events=[{**event, "quantity": 3}, {**event, "idempotency_key": "late-2"}, dict(event)],
        )
        assert (other.accepted, other.duplicates) == (0, 1)
        assert [(r.index, r.error) for r in other.rejected] == [(0, "too_old"), (1, "too_old")]
    assert UsageEvent.objects.filter(organization_id=organization.pk).count() == 1

"""`POST /usage/track`: quota, credits and event in one transaction."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Sum

from config.exceptions import ValidationFailed
from credits.models import CreditAccount, CreditTransaction
from usage.exceptions import QuotaExceeded
from usage.models import UsageEvent, UsageRollup
from usage.services import usage_track

from .conftest import admin_client_of, organization_on, plan_with_limits, url

pytestmark = pytest.mark.django_db
D = Decimal


def recorded(org) -> Decimal:
    return UsageEvent.objects.filter(organization_id=org.pk).aggregate(q=Sum("quantity"))["q"] or D(0)


def consumed(org) -> Decimal:
    rows = CreditTransaction.objects.filter(organization_id=org.pk, kind="consume")
    return -(rows.aggregate(a=Sum("amount"))["a"] or D(0))


def test_track_consumes_credits_and_records_the_event():
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=100)
    response = admin_client_of(org).post(
        url(org, "/track"),
        {"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "t1", "dimensions": {"platform": "ios"}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (
        body["credits"] == "3"
        and body["balance"] == "97"
        and body["current"] == "3"
        and body["limit"] == "10"
    )
    assert recorded(org) == 3 and consumed(org) == 3
    event = UsageEvent.objects.get(organization_id=org.pk)
    assert event.credits == 3 and event.dimensions == {"platform": "ios"}
    assert UsageRollup.objects.get(organization_id=org.pk).credits == 3


def test_quota_refusal_has_the_contract_body_and_changes_nothing(settings):
    settings.SITE_URL = "https://billing.example.com"
    org = organization_on(plan_with_limits(SMS_SENT=5), credits=100)
    client = admin_client_of(org)
    assert (
        client.post(
            url(org, "/track"), {"metric": "SMS_SENT", "quantity": 4, "idempotency_key": "a"}
        ).status_code
        == 201
    )
    response = client.post(url(org, "/track"), {"metric": "SMS_SENT", "quantity": 2, "idempotency_key": "b"})
    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "quota_exceeded" and body["message"]
    assert body["quota"] == {"metric": "SMS_SENT", "current": "4", "limit": "5", "percentage": 80.0}
    assert body["upgrade_url"] == f"https://billing.example.com/billing/{org.pk}/upgrade/"
    assert recorded(org) == 4 and consumed(org) == 4
    # What still fits is accepted.
    assert (
        client.post(
            url(org, "/track"), {"metric": "SMS_SENT", "quantity": 1, "idempotency_key": "c"}
        ).status_code
        == 201
    )


def test_insufficient_credits_refusal_changes_nothing():
    org = organization_on(plan_with_limits(AI_MESSAGE_GENERATED=100), credits=12)
    client = admin_client_of(org)
    ok = client.post(
        url(org, "/track"), {"metric": "AI_MESSAGE_GENERATED", "quantity": 2, "idempotency_key": "a"}
    )
    assert ok.status_code == 201 and ok.json()["balance"] == "2"
    refused = client.post(url(org, "/track"), {"metric": "AI_MESSAGE_GENERATED", "idempotency_key": "b"})
    assert refused.status_code == 402
    assert refused.json()["error"] == "insufficient_credits"
    assert refused.json()["required"] == "5" and refused.json()["balance"] == "2"
    assert recorded(org) == 2 and consumed(org) == 10
    # The refused quantity did not stay on the quota counter.
    body = client.get(url(org)).json()
    assert {r["metric"]: r["current"] for r in body["usage"]}["AI_MESSAGE_GENERATED"] == "2"


def test_a_replayed_track_is_one_effect_even_when_the_quota_is_now_full():
    org = organization_on(plan_with_limits(SMS_SENT=3), credits=100)
    first = usage_track(organization=org, metric="SMS_SENT", quantity=3, idempotency_key="k")
    again = usage_track(organization=org, metric="SMS_SENT", quantity=3, idempotency_key="k")
    assert again.replayed and again.event_id == first.event_id and again.credits == first.credits
    assert recorded(org) == 3 and consumed(org) == 3
    response = admin_client_of(org).post(
        url(org, "/track"), {"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "k"}
    )
    assert response.status_code == 200 and response["Idempotent-Replayed"] == "true"
    other = admin_client_of(org).post(
        url(org, "/track"), {"metric": "SMS_SENT", "quantity": 1, "idempotency_key": "k"}
    )
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    assert recorded(org) == 3 and consumed(org) == 3


def test_an_overage_metric_is_counted_past_its_limit_not_refused():
    from billing.models import PlanMeteredPrice

    plan = plan_with_limits(SMS_SENT=2)
    PlanMeteredPrice.objects.create(plan=plan, metric="SMS_SENT", meter_event_name="sms_sent", unit_amount=1)
    org = organization_on(plan, credits=100)
    for i in range(4):
        usage_track(organization=org, metric="SMS_SENT", idempotency_key=f"o{i}")
    assert recorded(org) == 4
    row = {r["metric"]: r for r in admin_client_of(org).get(url(org)).json()["usage"]}["SMS_SENT"]
    assert row["current"] == "4" and row["overage_billed"] and row["limit_reached"]


def test_metrics_without_a_price_charge_nothing_and_the_free_plan_limits_apply(organization):
    # The free plan: AI_VOICE_GENERATED has a limit of 0.
    response = admin_client_of(organization).post(
        url(organization, "/track"), {"metric": "AI_VOICE_GENERATED", "idempotency_key": "v"}
    )
    assert response.status_code == 402 and response.json()["quota"]["limit"] == "0"
    assert response.json()["quota"]["percentage"] == 100.0


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"metric": "SMS_SENT"},
        {"metric": "NOPE", "idempotency_key": "k"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "quantity": "abc"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "quantity": 0},
        {"metric": "SMS_SENT", "idempotency_key": "k", "occurred_at": "2001-01-01T00:00:00Z"},
        {"metric": "SMS_SENT", "idempotency_key": "k", "dimensions": {"a": {"b": 1}}},
        {"metric": "SMS_SENT", "idempotency_key": "k", "dimensions": "x"},
        {"metric": "x" * 65, "idempotency_key": "k"},
    ],
)
def test_bad_track_input_is_a_400_and_changes_nothing(payload):
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=100)
    response = admin_client_of(org).post(url(org, "/track"), payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "validation_error"
    assert recorded(org) == 0 and consumed(org) == 0


def test_the_balance_after_tracks_is_the_ledger(organization):
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=50)
    for i in range(5):
        usage_track(organization=org, metric="SMS_SENT", quantity=2, idempotency_key=f"b{i}")
    assert CreditAccount.objects.get(organization=org).balance == 40


def test_a_unique_metric_counts_distinct_resources_and_max_the_largest():
    from usage.models import Metric

    Metric.objects.create(
        code="ACTIVE_CONTACTS", name="Active contacts", unit="contact", aggregation="unique"
    )
    org = organization_on(plan_with_limits(ACTIVE_CONTACTS=2, STORAGE_USED_MB=100), credits=100)
    for i, contact in enumerate(["c1", "c2", "c1", "c2"]):
        usage_track(organization=org, metric="ACTIVE_CONTACTS", idempotency_key=f"u{i}", resource_id=contact)
    with pytest.raises(QuotaExceeded) as refused:
        usage_track(organization=org, metric="ACTIVE_CONTACTS", idempotency_key="u9", resource_id="c3")
    assert refused.value.current == 2
    with pytest.raises(ValidationFailed):
        usage_track(organization=org, metric="ACTIVE_CONTACTS", idempotency_key="u10")  # no resource_id
    for i, mb in enumerate([40, 90, 60]):
        usage_track(organization=org, metric="STORAGE_USED_MB", quantity=mb, idempotency_key=f"s{i}")
    with pytest.raises(QuotaExceeded):
        usage_track(organization=org, metric="STORAGE_USED_MB", quantity=101, idempotency_key="s9")
    rows = {r["metric"]: r for r in admin_client_of(org).get(url(org)).json()["usage"]}
    assert rows["ACTIVE_CONTACTS"]["current"] == "2" and rows["STORAGE_USED_MB"]["current"] == "90"

"""Reads from the rollups: series, stats, cost estimate; soft-limit notices; the quota
permission class and decorator; API_REQUEST metering; one vocabulary."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.test import RequestFactory
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from billing.models import BillingNotice, Plan
from usage.checks import vocabulary_problems
from usage.metering import metered
from usage.models import UsageEvent
from usage.permissions import quota_required, within_quota
from usage.services import usage_events_record, usage_track

from .conftest import admin_client_of, organization_on, plan_with_limits, url

pytestmark = pytest.mark.django_db


def hours_ago(hours: float):
    return (timezone.now() - timedelta(hours=hours)).isoformat()


def test_series_by_hour_day_and_month_with_credits():
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=1000)
    usage_events_record(
        organization=org,
        events=[
            {"metric": "SMS_SENT", "quantity": 2, "idempotency_key": "a", "occurred_at": hours_ago(50)},
            {"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "b", "occurred_at": hours_ago(49.5)},
            {"metric": "SMS_SENT", "quantity": 4, "idempotency_key": "c", "occurred_at": hours_ago(1)},
        ],
    )
    usage_track(organization=org, metric="SMS_SENT", quantity=5, idempotency_key="t")  # charges 5 credits
    client = admin_client_of(org)
    daily = client.get(url(org, "/SMS_SENT"), {"group_by": "day"}).json()
    assert daily["metric"] == "SMS_SENT" and daily["total"] == "14" and daily["credits"] == "5"
    assert sum(Decimal(p["quantity"]) for p in daily["series"]) == 14
    hourly = client.get(url(org, "/SMS_SENT"), {"group_by": "hour"}).json()
    assert len(hourly["series"]) in (3, 4) and hourly["total"] == "14"
    monthly = client.get(url(org, "/SMS_SENT"), {"group_by": "month"}).json()
    assert monthly["total"] == "14" and len(monthly["series"]) in (1, 2)
    start = (timezone.now() - timedelta(hours=10)).isoformat()
    recent = client.get(url(org, "/SMS_SENT"), {"group_by": "hour", "start": start}).json()
    assert recent["total"] == "9"
    assert client.get(url(org, "/NOPE")).status_code == 404
    for bad in (
        {"group_by": "week"},
        {"start": "soon"},
        {"start": "2020-01-01T00:00:00Z"},
        {"start": timezone.now().isoformat(), "end": (timezone.now() - timedelta(days=1)).isoformat()},
        {"group_by": "hour", "start": (timezone.now() - timedelta(days=60)).isoformat()},
    ):
        response = client.get(url(org, "/SMS_SENT"), bad)
        assert response.status_code == 400, (bad, response.content)


def test_stats_totals_cost_per_unit_top_dimensions_and_peak_hours():
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=1000)
    for i, platform in enumerate(["ios", "ios", "ios", "android", "android", "web"]):
        usage_track(
            organization=org,
            metric="SMS_SENT",
            quantity=2,
            idempotency_key=f"s{i}",
            dimensions={"platform": platform, "campaign": f"c{i}"},
        )
    usage_track(organization=org, metric="AI_TOKENS", quantity=1000, idempotency_key="ai")
    body = admin_client_of(org).get(url(org, "/stats")).json()
    totals = {t["metric"]: t for t in body["totals"]}
    assert totals["SMS_SENT"] == {
        "metric": "SMS_SENT",
        "quantity": "12",
        "events": 6,
        "credits": "12",
        "credits_per_unit": "1",
    }
    assert totals["AI_TOKENS"]["credits"] == "2" and totals["AI_TOKENS"]["credits_per_unit"] == "0.002"
    assert body["events"] == 7 and body["credits"] == "14"
    assert body["top_dimensions"]["platform"][0] == {"value": "ios", "quantity": "6", "events": 3}
    assert [v["value"] for v in body["top_dimensions"]["platform"]] == ["ios", "android", "web"]
    assert "campaign" not in body["top_dimensions"]  # not a rolled-up dimension
    assert body["peak_hours"][0]["hour"] == timezone.now().hour and body["peak_hours"][0]["events"] == 7
    only = admin_client_of(org).get(url(org, "/stats"), {"dimension": "platform"}).json()
    assert list(only["top_dimensions"]) == ["platform"]


def test_cost_estimate():
    org = organization_on(plan_with_limits())
    client = admin_client_of(org)
    body = client.post(
        url(org, "/cost-estimate"), {"metric": "CALL_DURATION_SECONDS", "quantity": 600}
    ).json()
    # 0.05 credits a second; the smallest pack sells 1,000 credits for 10.00 USD.
    assert body == {
        "metric": "CALL_DURATION_SECONDS",
        "quantity": "600",
        "credits": "30",
        "amount": 30,
        "currency": "usd",
    }
    assert client.post(url(org, "/cost-estimate"), {"metric": "NOPE", "quantity": 1}).status_code == 400
    assert client.post(url(org, "/cost-estimate"), {"metric": "SMS_SENT", "quantity": "x"}).status_code == 400


def test_soft_limits_warn_once_per_period_at_80_and_100_percent(
    django_capture_on_commit_callbacks, celery_eager
):
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=100)
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(7):
            usage_track(organization=org, metric="SMS_SENT", idempotency_key=f"a{i}")
    assert not BillingNotice.objects.filter(organization=org).exists()
    with django_capture_on_commit_callbacks(execute=True):
        usage_track(organization=org, metric="SMS_SENT", idempotency_key="b")  # 8: 80 %
        usage_track(organization=org, metric="SMS_SENT", idempotency_key="c")  # 9
    notices = list(BillingNotice.objects.filter(organization=org).values_list("kind", flat=True))
    assert notices == ["usage_warning"]
    with django_capture_on_commit_callbacks(execute=True):
        usage_events_record(
            organization=org, events=[{"metric": "SMS_SENT", "quantity": 1, "idempotency_key": "d"}]
        )
        usage_events_record(
            organization=org, events=[{"metric": "SMS_SENT", "quantity": 1, "idempotency_key": "e"}]
        )
    kinds = sorted(BillingNotice.objects.filter(organization=org).values_list("kind", flat=True))
    assert kinds == ["usage_limit_reached", "usage_warning"]
    subjects = sorted(m.subject for m in mail.outbox)
    assert any("80%" in s for s in subjects) and any("reached" in s for s in subjects)
    assert any(f"/billing/{org.pk}/upgrade/" in m.body for m in mail.outbox)
    body = admin_client_of(org).get(url(org)).json()
    row = {r["metric"]: r for r in body["usage"]}["SMS_SENT"]
    assert row["soft_limit_warning"] and row["limit_reached"] and row["percentage"] == 110.0


def test_the_permission_class_and_the_decorator_refuse_with_the_quota_body():
    org = organization_on(plan_with_limits(CAMPAIGN_LAUNCHED=2), credits=100)

    class LaunchApi(APIView):
        permission_classes = [within_quota("CAMPAIGN_LAUNCHED")]

        def get_quota_organization(self, request):
            return org

        def post(self, request):
            usage_track(organization=org, metric="CAMPAIGN_LAUNCHED", idempotency_key=request.data["key"])
            return Response({"launched": True}, status=201)

    @quota_required("CAMPAIGN_LAUNCHED", organization=lambda request: org)
    def launch(request):
        from django.http import JsonResponse

        return JsonResponse({"launched": True})

    view = LaunchApi.as_view()
    factory = APIRequestFactory()
    for key in ("one", "two"):
        request = factory.post("/launch", {"key": key}, format="json")
        force_authenticate(request, user=None)
        assert view(request).status_code == 201
    refused = view(factory.post("/launch", {"key": "three"}, format="json"))
    assert refused.status_code == 402
    assert refused.data["error"] == "quota_exceeded" and refused.data["quota"]["current"] == "2"
    assert refused.data["upgrade_url"].endswith(f"/billing/{org.pk}/upgrade/")
    plain = launch(RequestFactory().post("/launch"))
    assert plain.status_code == 402 and b"quota_exceeded" in plain.content
    assert UsageEvent.objects.filter(organization_id=org.pk).count() == 2


def test_metering_api_requests_for_a_chosen_view():
    org = organization_on(plan_with_limits(API_REQUEST=1000))

    @metered(organization=lambda request: org)
    def endpoint(request):
        from django.http import HttpResponse

        return HttpResponse("ok", status=int(request.GET.get("status", 200)))

    for status in (200, 200, 404, 201):
        endpoint(RequestFactory().get("/x", {"status": status}))
    events = UsageEvent.objects.filter(organization_id=org.pk)
    assert events.count() == 3 and {e.resource_id for e in events} == {"endpoint"}
    row = {r["metric"]: r for r in admin_client_of(org).get(url(org)).json()["usage"]}["API_REQUEST"]
    assert row["current"] == "3"


def test_one_vocabulary_plan_limits_credit_prices_and_metered_prices_name_metrics():
    assert vocabulary_problems() == []
    Plan.objects.filter(code="starter").update(limits={"SMS_SENT": 1, "FAXES_SENT": 3})
    assert vocabulary_problems() == ["plan 'starter' has a limit for 'FAXES_SENT', which is not a metric"]


def test_a_metric_charges_the_credit_price_named_by_its_code():
    from django.db import IntegrityError, transaction

    from usage.models import Metric

    metric = Metric.objects.get(code="SMS_SENT")
    assert metric.credit_price.event_name == "SMS_SENT"
    with pytest.raises(IntegrityError), transaction.atomic():
        Metric.objects.filter(pk=metric.pk).update(credit_price_id="AI_TOKENS")


def test_the_catalogue_endpoints_still_answer():
    from rest_framework.test import APIClient

    prices = APIClient().get("/api/v1/credit-prices").json()
    assert {p["event_name"] for p in prices} >= {"SMS_SENT", "AI_TOKENS"}
    plans = APIClient().get("/api/v1/plans").json()
    assert plans[0]["limits"]["SMS_SENT"] == 50


@pytest.mark.parametrize(
    ("start_hours", "end_hours"),
    [(70, 0), (53, 5), (30, 29), (47, 25), (2, 1), (71, 48)],
)
def test_period_totals_from_whole_days_and_partial_hours_equal_the_hourly_sums(start_hours, end_hours):
    from usage.models import UsageRollup
    from usage.selectors import _period_totals, floor_hour

    org = organization_on(plan_with_limits())
    now = floor_hour(timezone.now())
    events = [
        {"metric": "SMS_SENT", "quantity": 1 + h % 5, "idempotency_key": f"h{h}",
         "occurred_at": (now - timedelta(hours=h, minutes=-10)).isoformat()}
        for h in range(0, 72)
    ]  # fmt: skip
    usage_events_record(organization=org, events=events)
    hour_from, hour_to = now - timedelta(hours=start_hours), now - timedelta(hours=end_hours)
    expected = UsageRollup.objects.filter(organization_id=org.pk, hour__gte=hour_from, hour__lt=hour_to)
    totals = _period_totals(org.pk, hour_from, hour_to)
    assert [(v[0], v[1]) for v in totals.values()] == (
        [(sum(r.quantity for r in expected), len(expected))] if expected else []
    )

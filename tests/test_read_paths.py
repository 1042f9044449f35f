"""The read paths of issue 15 (`GET /credits`, `GET /usage`, `GET /subscription`): their answers
are built directly, not through the serializers, which stay as the schema; and the reads behind
them (one prepared statement by the organization's id) answer what the ORM reads answered.

Each answer is compared with what its OutputSerializer makes of the same summary, and each
prepared read with the ORM's (`organization_billing_period`, `organization_plan_get`, the plan's
row), in the states that decide them: free, on a plan, subscribed, after the mirrored period
ended (rolled forward) and before it started (calendar month)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.forms.models import model_to_dict
from django.utils import timezone
from djstripe.models import Subscription
from rest_framework.test import APIClient

from billing import stripe_data
from billing.api import SubscriptionOutputSerializer
from billing.models import Organization, Plan
from billing.selectors import (
    organization_billing_period,
    organization_period_state_get,
    organization_plan_get,
    subscription_summary_get,
)
from billing.services import api_key_create, subscription_create
from credits.api import CreditSummaryApi
from credits.selectors import credit_summary_get
from credits.services import credit_consume, credit_grant
from credits.services.ledger import credit_account_settings_update
from tests.billing.factories import OrganizationFactory
from usage.api import UsageSummaryApi
from usage.selectors import metric_catalog, quota_context, usage_current, usage_summary_get
from usage.services import usage_events_record

pytestmark = pytest.mark.django_db


def bearer(org) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(organization=org, name='reader').raw_key}")
    return client


def get(org, path: str) -> dict:
    response = bearer(org).get(f"/api/v1/organizations/{org.pk}{path}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def subscribed(billing_org, webhooks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(
            organization=billing_org,
            plan="business",
            interval="month",
            payment_method="pm_card_visa",
            trial_days=0,
        )
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.subscription_status == "active" and org.stripe_subscription_id
    return org


def usage_serialized(summary) -> dict:
    return UsageSummaryApi.OutputSerializer(summary).data


def subscription_serialized(summary) -> dict:
    fields = SubscriptionOutputSerializer().fields
    return SubscriptionOutputSerializer(
        {**{f: getattr(summary, f) for f in fields}, "plan": summary.plan.code}
    ).data


def assert_same_plan(plan: Plan, expected: Plan) -> None:
    assert plan.pk == expected.pk
    assert model_to_dict(plan) == model_to_dict(expected)
    assert (plan.created_at, plan.updated_at) == (expected.created_at, expected.updated_at)
    assert isinstance(plan.limits, dict) and isinstance(plan.features, list)


def record(org, metric: str, n: int, quantity=1) -> None:
    events = [{"metric": metric, "quantity": quantity, "idempotency_key": f"{metric}-{i}"} for i in range(n)]
    assert usage_events_record(organization=org, events=events).accepted == n


# --------------------------------------------------------------------------- GET /usage
def test_usage_answer_is_the_serializers_and_the_reads_match_the_orms(catalogue):
    plan, _ = Plan.objects.update_or_create(
        code="reads-limits",
        defaults={"name": "reads", "limits": {"SMS_SENT": 10, "API_REQUEST": 3, "CALL_MADE": 0}},
    )
    org = OrganizationFactory(plan=plan, subscription_status="active")
    credit_grant(organization=org, amount=1000, source="purchase", reference="reads")
    record(org, "SMS_SENT", 9)
    record(org, "API_REQUEST", 4)
    record(org, "STORAGE_USED_MB", 2, quantity="7.5")
    for free in (False, True):
        if free:  # the same organization on the free plan (no entitled status)
            Organization.objects.filter(pk=org.pk).update(subscription_status="canceled")
        fresh = Organization.objects.get(pk=org.pk)
        now = timezone.now()
        summary = usage_summary_get(organization=fresh, now=now)
        body = get(fresh, "/usage")
        assert body == usage_serialized(summary)
        ctx = quota_context(organization=fresh, now=now)
        assert (summary.period_start, summary.period_end) == (ctx.period_start, ctx.period_end)
        catalog = metric_catalog()
        assert [m.metric for m in summary.usage] == list(catalog)
        for m in summary.usage:
            metric = catalog[m.metric]
            used = usage_current(
                organization_id=org.pk,
                metric=metric,
                hour_from=ctx.hour_from,
                hour_to=ctx.hour_to,
                with_holds=False,
            )
            assert (m.current, m.limit, m.overage_billed) == (
                used,
                ctx.limit(m.metric),
                m.metric in ctx.overage,
            )
        by_metric = {m["metric"]: m for m in body["usage"]}
        if free:
            assert by_metric["SMS_SENT"]["limit"] == str(organization_plan_get(fresh).limits["SMS_SENT"])
        else:
            assert by_metric["SMS_SENT"] == {
                "metric": "SMS_SENT", "name": "SMS sent", "unit": "message", "current": "9", "limit": "10",
                "percentage": 90.0, "unlimited": False, "soft_limit_warning": True, "limit_reached": False,
                "overage_billed": False,
            }  # fmt: skip
            assert by_metric["API_REQUEST"]["limit_reached"] and by_metric["API_REQUEST"]["percentage"] > 100
            # A limit of 0: reached from the start (`usage.exceptions.percentage`).
            assert (by_metric["CALL_MADE"]["limit"], by_metric["CALL_MADE"]["percentage"]) == ("0", 100.0)


def test_usage_period_of_a_subscription_inside_after_and_before_the_mirrored_period(subscribed):
    data = Subscription.objects.get(id=subscribed.stripe_subscription_id).stripe_data
    start, end = stripe_data.subscription_period(data)
    for now in (
        start + timedelta(days=3),
        end + timedelta(hours=1),
        end + timedelta(days=45),
        start - timedelta(days=40),
    ):
        state = organization_period_state_get(organization_id=subscribed.pk, now=now)
        assert (state.period_start, state.period_end) == organization_billing_period(
            organization=subscribed, now=now
        )
        assert (state.plan_id, state.subscription_status) == (subscribed.plan_id, "active")
        summary = usage_summary_get(organization=subscribed, now=now)
        assert (summary.period_start, summary.period_end) == (state.period_start, state.period_end)
    assert get(subscribed, "/usage") == usage_serialized(
        usage_summary_get(organization=subscribed, now=timezone.now())
    )


def test_usage_summary_reads_its_period_in_one_statement_and_checks_its_guess(catalogue, subscribed):
    """`usage_summary_get` reads the totals of the period it saw the organization in last (the
    calendar month the first time) in the statement that reads the period: one statement as a
    rule, a second one whenever the guess is not the period, and the totals are always the
    period's (a planted wrong guess that holds `now` but not the events would be caught)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from usage import selectors

    def summary(org, now):
        with CaptureQueriesContext(connection) as queries:
            answer = usage_summary_get(organization=org, now=now)
        return answer, len(queries)

    def used(answer, metric: str):
        return next(m.current for m in answer.usage if m.metric == metric)

    plan, _ = Plan.objects.update_or_create(
        code="reads-guess", defaults={"name": "guess", "limits": {"SMS_SENT": 100}}
    )
    free = OrganizationFactory(plan=plan, subscription_status="active")  # the calendar month
    now = timezone.now()
    # Events earlier this month (its first instant, early on the 1st).
    month_start = organization_billing_period(organization=free, now=now)[0]
    occurred = max(month_start, now - timedelta(hours=2))
    events = [
        {"metric": "SMS_SENT", "idempotency_key": f"g-{i}", "occurred_at": occurred.isoformat()}
        for i in range(3)
    ]
    assert usage_events_record(organization=free, events=events).accepted == 3
    record(subscribed, "SMS_SENT", 4)
    selectors._PERIOD_GUESSES.clear()

    answer, statements = summary(free, now)
    assert statements == 1 and used(answer, "SMS_SENT") == 3
    # The subscription's period is not the calendar month (it began when it was created).
    first, statements = summary(subscribed, now)
    assert statements == 2 and used(first, "SMS_SENT") == 4
    again, statements = summary(subscribed, now)
    assert statements == 1 and again == first
    # A wrong guess holding `now` but not the events: caught, and the period's totals read.
    selectors._PERIOD_GUESSES[free.pk] = (occurred + (now - occurred) / 2, now + timedelta(hours=1))
    answer, statements = summary(free, now)
    assert statements == 2 and used(answer, "SMS_SENT") == 3
    assert (answer.period_start, answer.period_end) == organization_billing_period(organization=free, now=now)
    # A later month: the guess no longer holds `now`, the new month is read in one statement.
    later = now + timedelta(days=40)
    answer, statements = summary(free, later)
    assert statements == 1 and used(answer, "SMS_SENT") == 0
    assert (answer.period_start, answer.period_end) == organization_billing_period(
        organization=free, now=later
    )
    # After the subscription's mirrored period (rolled forward): read right, then guessed right.
    data = Subscription.objects.get(id=subscribed.stripe_subscription_id).stripe_data
    after = stripe_data.subscription_period(data)[1] + timedelta(days=3)
    rolled, statements = summary(subscribed, after)
    assert statements == 2 and used(rolled, "SMS_SENT") == 0
    assert (rolled.period_start, rolled.period_end) == organization_billing_period(
        organization=subscribed, now=after
    )
    assert summary(subscribed, after) == (rolled, 1)


# --------------------------------------------------------------------------- GET /subscription
def test_subscription_answer_and_plan_on_the_free_plan(billing_org):
    summary = subscription_summary_get(organization=billing_org)
    assert summary.stripe_id is None and summary.status == "active"
    assert_same_plan(summary.plan, Plan.objects.get(code=Plan.FREE))
    assert get(billing_org, "/subscription") == subscription_serialized(summary)


def test_subscription_answer_and_plan_when_subscribed_canceling_and_ended(subscribed, billing_client):
    base = f"/api/v1/organizations/{subscribed.pk}/subscription"
    summary = subscription_summary_get(organization=subscribed)
    assert summary.stripe_id == subscribed.stripe_subscription_id and summary.interval == "month"
    assert_same_plan(summary.plan, organization_plan_get(subscribed))
    assert summary.plan.code == "business"
    body = get(subscribed, "/subscription")
    assert body == subscription_serialized(summary)
    assert (
        body["current_period_start"].endswith("Z") and body["trial_end"] is None and body["pay_url"] is None
    )
    assert billing_client.post(f"{base}/cancel", {"immediately": False}, format="json").status_code == 200
    summary = subscription_summary_get(organization=subscribed)
    assert summary.cancel_at_period_end
    assert get(subscribed, "/subscription") == subscription_serialized(summary)
    # An organization whose status no longer entitles it: the free plan, whatever the mirror says.
    Organization.objects.filter(pk=subscribed.pk).update(subscription_status="unpaid")
    summary = subscription_summary_get(organization=subscribed)
    assert summary.plan.code == Plan.FREE and summary.stripe_id == subscribed.stripe_subscription_id
    assert get(subscribed, "/subscription") == subscription_serialized(summary)


def test_subscription_summary_without_a_free_plan_fails_as_before(billing_org):
    Plan.objects.filter(code=Plan.FREE).update(code="gone")
    with pytest.raises(Plan.DoesNotExist):
        subscription_summary_get(organization=billing_org)


# --------------------------------------------------------------------------- GET /credits
def test_credits_answer_is_the_serializers(organization):
    def serialized() -> dict:
        summary = credit_summary_get(organization=organization)
        data = CreditSummaryApi.OutputSerializer({**summary.__dict__, "auto_refill": None}).data
        return {**data, "auto_refill": get(organization, "/credits")["auto_refill"]}

    assert get(organization, "/credits") == serialized()  # no account yet
    soon = timezone.now() + timedelta(days=3)
    credit_grant(organization=organization, amount="12.5", source="promo", expires_at=soon, reference="a")
    credit_grant(organization=organization, amount=100, source="purchase", reference="b")
    credit_consume(organization=organization, amount="0.25", idempotency_key="c")
    body = get(organization, "/credits")
    assert body == serialized()
    assert body["balance"] == "112.25" and body["expiring"][0]["amount"] == "12.5"
    assert body["expiring"][0]["expires_at"].endswith("Z") and body["low_balance_threshold"] is None
    credit_account_settings_update(organization=organization, low_balance_threshold=200)
    body = get(organization, "/credits")
    assert body == serialized() and body["low_balance"] is True and body["low_balance_threshold"] == "200"

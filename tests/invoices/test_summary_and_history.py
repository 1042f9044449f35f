"""`GET /billing-summary` (plan, status, the next invoice from Stripe's preview, credits, open
invoices) and `GET /billing-history` (payments, invoices, statements, credit purchases, refunds;
newest first; paginated; filtered by kind and date), on real Stripe flows in the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal as D

import pytest
import stripe
from django.utils import timezone

from billing.services import subscription_create
from credits.services import credit_grant
from tests.billing.factories import MembershipFactory
from tests.stripe_helpers import STRIPE_KEY

pytestmark = pytest.mark.django_db


def summary(client, org):
    return client.get(f"/api/v1/organizations/{org.id}/billing-summary")


def history(client, org, **params):
    return client.get(f"/api/v1/organizations/{org.id}/billing-history", params)


@pytest.fixture
def subscribed(webhooks, billing_org):
    subscription = subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    webhooks.deliver()
    return subscription


def test_summary_of_a_subscribed_organization(subscribed, billing_org, billing_member_client, catalogue):
    credit_grant(organization=billing_org, amount=250, reference="welcome")
    response = summary(billing_member_client, billing_org)
    assert response.status_code == 200
    body = response.json()
    price = catalogue["starter"].prices.get(interval="month")
    assert body["plan"] == {"code": "starter", "name": "Starter"} and body["status"] == "active"
    assert body["next_invoice"]["amount"] == price.amount and body["next_invoice"]["currency"] == "usd"
    assert body["next_invoice"]["date"][:16] == body["current_period_end"][:16]
    assert body["next_invoice_unavailable"] is False
    included = int(catalogue["starter"].included_credits)  # granted when the period was paid
    total = str(included + 250)
    assert body["credits"] == {"balance": total, "held": "0", "available": total, "low_balance": False}
    assert (body["open_invoices"], body["amount_due"]) == (0, 0)


def test_summary_when_stripe_is_down_still_answers(
    subscribed, billing_org, billing_member_client, stripe_emulator
):
    stripe_emulator.faults.add(method="POST", path="/v1/invoices/create_preview", status=500)
    body = summary(billing_member_client, billing_org).json()
    assert body["next_invoice"] is None and body["next_invoice_unavailable"] is True
    assert body["plan"]["code"] == "starter"


def test_summary_of_a_free_organization_asks_stripe_nothing(organization, member_client, stripe_emulator):
    body = summary(member_client, organization).json()
    assert body["plan"]["code"] == "free" and body["next_invoice"] is None
    assert body["credits"]["balance"] == "0"
    assert list(stripe_emulator.request_log) == []


def test_history_has_every_kind_newest_first_and_pages_consistently(
    subscribed, webhooks, billing_org, billing_client, stripe_emulator, credit_catalogue
):
    bought = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/credits/purchase",
        {"pack": "credits-1k", "payment_method": "pm_card_visa", "idempotency_key": "h-1"},
        format="json",
    ).json()
    assert bought["status"] == "succeeded"
    stripe.Refund.create(payment_intent=bought["payment_intent"], amount=400, **STRIPE_KEY)
    link = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/payment-links",
        {"description": "Setup", "amount": 9900, "currency": "usd", "days_until_due": 7},
        format="json",
    ).json()
    webhooks.deliver()
    body = history(billing_client, billing_org, page_size=100).json()
    rows = body["results"]
    kinds = [row["kind"] for row in rows]
    # the card payment of the credit purchase is the purchase's entry, not a second one
    assert body["count"] == len(rows) == 5, rows
    assert sorted(kinds) == sorted(["invoice", "invoice", "payment", "credit_purchase", "refund"])
    purchase = next(row for row in rows if row["kind"] == "credit_purchase")
    assert not [row for row in rows if row["kind"] == "payment" and row["amount"] == purchase["amount"]]
    times = [datetime.fromisoformat(row["occurred_at"]) for row in rows]
    assert times == sorted(times, reverse=True)
    by_kind = {row["kind"]: row for row in rows}
    assert by_kind["refund"]["amount"] == -400 and by_kind["refund"]["status"] == "partially_refunded"
    assert by_kind["credit_purchase"] == {
        **by_kind["credit_purchase"],
        "amount": 1000,
        "currency": "usd",
        "description": "1000 credits",
        "status": "succeeded",
    }
    invoices = [row for row in rows if row["kind"] == "invoice"]
    assert {row["status"] for row in invoices} == {"paid", "open"}
    assert link["invoice_id"] in {row["id"] for row in invoices}
    walked, page = [], history(billing_client, billing_org, page_size=4)
    while True:
        data = page.json()
        walked += data["results"]
        if not data["next"]:
            break
        page = billing_client.get(data["next"])
    assert walked == rows
    only = history(billing_client, billing_org, kind="payment,refund").json()
    assert {row["kind"] for row in only["results"]} == {"payment", "refund"} and only["count"] == 2
    future = (timezone.now() + timedelta(days=1)).isoformat()
    assert history(billing_client, billing_org, start=future).json()["count"] == 0
    assert history(billing_client, billing_org, end=future).json()["count"] == 5


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "gift"},
        {"start": "yesterday"},
        {"page": "0"},
        {"page": str(10**30)},
        {"page_size": "-1"},
        {"start": "2026-02-01", "end": "2026-01-01"},
        {"start": "9999-12-31T23:59:59-12:00"},
        {"end": "0001-01-01T00:00:00+14:00"},
        {"start": "2026-13-01"},
        {"kind": "x" * 5000},
    ],
)
def test_bad_history_filters_are_400(organization, member_client, params):
    response = history(member_client, organization, **params)
    assert response.status_code == 400 and response.json()["error"] == "validation_error"


def test_another_tenant_sees_none_of_it(subscribed, billing_org, organization):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(MembershipFactory(organization=organization).user)
    for path in ("billing-summary", "billing-history"):
        response = client.get(f"/api/v1/organizations/{billing_org.id}/{path}")
        assert response.status_code == 404
    assert history(client, organization).json()["count"] == 0


def test_summary_shows_holds_and_the_usage_nearest_its_limit(member_client, organization):
    from billing.models import Plan
    from tests.usage.conftest import seed_catalogues
    from usage.models import Metric
    from usage.services import usage_events_record, usage_reservation_create

    if not Metric.objects.exists():
        seed_catalogues()
    plan, _ = Plan.objects.update_or_create(
        code="summary-test", defaults={"name": "Summary", "limits": {"SMS_SENT": 10, "CALL_MADE": 100}}
    )
    type(organization).objects.filter(pk=organization.pk).update(plan=plan, subscription_status="active")
    credit_grant(organization=organization, amount=100, source="purchase", reference="summary")
    usage_events_record(
        organization=organization,
        events=[
            {"metric": "SMS_SENT", "quantity": 8, "idempotency_key": "s-1"},
            {"metric": "CALL_MADE", "quantity": 5, "idempotency_key": "c-1"},
        ],
    )
    held = usage_reservation_create(
        organization=organization, metric="AI_MESSAGE_GENERATED", estimated_quantity=2, idempotency_key="h"
    )
    body = summary(member_client, organization).json()
    credits = body["credits"]
    assert D(credits["held"]) == held.hold.amount > 0
    assert D(credits["available"]) == D(credits["balance"]) - D(credits["held"])
    first, second = body["usage"][:2]
    assert (first["metric"], first["current"], first["limit"], first["percentage"]) == (
        "SMS_SENT",
        "8",
        "10",
        80.0,
    )
    assert (second["metric"], second["percentage"]) == ("CALL_MADE", 5.0)

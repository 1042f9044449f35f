"""The metered overage item follows the plan (issue 11 item 7): an upgrade to the metered plan adds
it and the next renewal invoice bills the usage sent to its meter; a downgrade takes it away and
the renewal after it bills none; a subscription made on Stripe Checkout carries it; one made
without it (on Stripe's own pages) gets it from the webhook's task. Against the emulator."""

from __future__ import annotations

import pytest

from billing import stripe_api
from billing.models import Organization, PlanMeteredPrice
from billing.selectors import organization_customer_get, subscription_live_get
from billing.services import (
    subscription_change,
    subscription_change_preview,
    subscription_checkout_session_create,
    subscription_create,
)
from usage.services import usage_events_record, usage_meter_sync

pytestmark = pytest.mark.django_db


def metered_price_id() -> str:
    return PlanMeteredPrice.objects.get(plan__code="business", metric="SMS_SENT").stripe_price_id


def item_prices(org) -> list[str]:
    sub = stripe_api.subscription_retrieve(subscription_id=subscription_live_get(organization=org).id)
    return [item["price"]["id"] for item in sub.to_dict()["items"]["data"]]


def cycle_invoices(emulator) -> list[dict]:
    return [i for i in emulator.objects("invoice") if i["billing_reason"] == "subscription_cycle"]


def metered_lines(invoice: dict) -> list[dict]:
    return [
        line
        for line in invoice["lines"]["data"]
        if (line.get("pricing") or {}).get("price_details", {}).get("price") == metered_price_id()
    ]


def sms(org, key: str, quantity: int) -> None:
    result = usage_events_record(
        organization=org, events=[{"metric": "SMS_SENT", "quantity": quantity, "idempotency_key": key}]
    )
    assert result.accepted == 1


@pytest.fixture
def professional(billing_org, webhooks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(
            organization=billing_org,
            plan="professional",
            interval="month",
            payment_method="pm_card_visa",
            trial_days=0,
        )
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.plan.code == "professional" and metered_price_id() not in item_prices(org)
    return org


def test_upgrade_adds_the_metered_item_and_the_renewal_bills_usage_then_a_downgrade_stops_it(
    professional, webhooks, stripe_emulator, django_capture_on_commit_callbacks
):
    preview = subscription_change_preview(organization=professional, plan="business", interval="month")
    assert preview.plan.code == "business" and preview.proration_amount > 0
    with django_capture_on_commit_callbacks(execute=True):
        subscription_change(organization=professional, plan="business", interval="month")
    webhooks.deliver()
    org = Organization.objects.get(pk=professional.pk)
    assert org.plan.code == "business"
    prices = item_prices(org)
    assert prices.count(metered_price_id()) == 1 and len(prices) == 2
    sms(org, "a", 100_040)  # 40 past Business's 100,000
    assert usage_meter_sync(organization=org).sent == 1

    stripe_emulator.advance(days=32)  # past a 31-day month's renewal and its invoice's hour
    webhooks.deliver()
    (renewal,) = cycle_invoices(stripe_emulator)
    (line,) = metered_lines(renewal)
    assert (line["quantity"], line["amount"], renewal["status"]) == (40, 40, "paid")

    with django_capture_on_commit_callbacks(execute=True):
        subscription_change(organization=org, plan="professional", interval="month")
    webhooks.deliver()
    org = Organization.objects.get(pk=org.pk)
    assert org.plan.code == "professional" and metered_price_id() not in item_prices(org)
    sms(org, "b", 50)
    assert usage_meter_sync(organization=org).queued == 0  # not metered any more: nothing sent
    stripe_emulator.advance(days=32)  # past a 31-day month's renewal and its invoice's hour
    webhooks.deliver()
    later = [i for i in cycle_invoices(stripe_emulator) if i["id"] != renewal["id"]]
    assert len(later) == 1 and metered_lines(later[0]) == [] and later[0]["status"] == "paid"


def test_checkout_subscriptions_carry_the_metered_item(billing_org, webhooks, stripe_emulator):
    session = subscription_checkout_session_create(
        organization=billing_org,
        plan="business",
        interval="month",
        success_url="http://app.test/ok",
        cancel_url="http://app.test/no",
    )
    assert stripe_emulator.checkout_submit(session.id, "success")["status"] == "complete"
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.plan.code == "business" and item_prices(org).count(metered_price_id()) == 1


def test_a_subscription_made_without_it_gets_the_metered_item_from_the_webhook(
    billing_org, webhooks, stripe_emulator, catalogue
):
    from billing.services import payment_method_attach

    payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa", set_default=True)
    price = catalogue["business"].prices.get(interval="month")
    customer = organization_customer_get(organization=billing_org).id
    stripe_api.subscription_create(  # as the Stripe dashboard would make it: the plan's price only
        customer_id=customer,
        price_id=price.stripe_price_id,
        idempotency_key="outside",
        metadata={"organization_id": str(billing_org.pk)},
    )
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.plan.code == "business"
    assert item_prices(org).count(metered_price_id()) == 1
    webhooks.deliver()  # the update the task caused changes nothing more
    assert item_prices(org).count(metered_price_id()) == 1

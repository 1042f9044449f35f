"""Subscription lifecycles on Stripe test clocks, with every webhook really delivered, signed
and handled: trials, renewals, dunning, upgrades, cancellation at period end."""

import pytest
from django.core import mail

from billing.models import BillingNotice, Organization
from billing.services import (
    payment_method_attach,
    subscription_cancel,
    subscription_change,
    subscription_create,
)
from tests.stripe_helpers import advance, organization_on_test_clock

pytestmark = pytest.mark.django_db


@pytest.fixture
def clocked(catalogue, billing_owner, webhooks):
    organization, clock = organization_on_test_clock(owner=billing_owner)
    return organization, clock


def state(org):
    org = Organization.objects.select_related("plan").get(pk=org.pk)
    return (org.plan.code if org.plan_id else "free", org.subscription_status)


def period_end(stripe_emulator, org) -> int:
    sub = stripe_emulator.get(Organization.objects.get(pk=org.pk).stripe_subscription_id)
    return sub["items"]["data"][0]["current_period_end"]


def test_trial_becomes_active_at_trial_end(
    clocked, webhooks, stripe_emulator, django_capture_on_commit_callbacks
):
    org, clock = clocked
    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(
            organization=org, plan="professional", interval="month", payment_method="pm_card_visa"
        )
    webhooks.deliver()
    assert state(org) == ("professional", "trialing")
    advance(clock, days=11.5)  # three days before the end of the 14-day trial
    webhooks.deliver()
    assert BillingNotice.objects.filter(organization=org, kind="trial_ending").count() == 1
    assert any("trial" in m.subject.lower() for m in mail.outbox)
    assert state(org) == ("professional", "trialing")
    advance(clock, days=3)
    webhooks.deliver()
    assert state(org) == ("professional", "active")
    paid = [
        i for i in stripe_emulator.objects("invoice") if i["status"] == "paid" and i["amount_paid"] == 9900
    ]
    assert len(paid) == 1


def test_failed_renewal_goes_past_due_and_recovers_when_the_card_is_replaced(
    clocked, webhooks, stripe_emulator, billing_client
):
    org, clock = clocked
    subscription_create(
        organization=org, plan="starter", interval="month", payment_method="pm_card_visa", trial_days=0
    )
    webhooks.deliver()
    stripe_emulator.faults.add(decline="insufficient_funds", times=1)  # the renewal charge is declined
    advance(clock, to=period_end(stripe_emulator, org) + 3600)
    webhooks.deliver()
    assert state(org) == ("starter", "past_due")  # the plan stays while Stripe retries
    failed = [m for m in mail.outbox if "payment failed" in m.subject.lower()]
    assert len(failed) == 1 and "http" in failed[0].body
    # The owner replaces the card through the API; Stripe's next retry uses it.
    billing_client.force_authenticate(org.memberships.get().user)
    response = billing_client.post(
        f"/api/v1/organizations/{org.id}/payment-methods",
        {"payment_method": "pm_card_mastercard", "set_default": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    advance(clock, days=3.5)
    webhooks.deliver()
    assert state(org) == ("starter", "active")
    renewal = [i for i in stripe_emulator.objects("invoice") if i["billing_reason"] == "subscription_cycle"]
    assert [i["status"] for i in renewal] == ["paid"]


def test_upgrade_mid_period_puts_a_proration_line_on_the_next_invoice(clocked, webhooks, stripe_emulator):
    org, clock = clocked
    subscription_create(
        organization=org, plan="starter", interval="month", payment_method="pm_card_visa", trial_days=0
    )
    end = period_end(stripe_emulator, org)
    advance(clock, days=10)
    subscription_change(organization=org, plan="professional")
    webhooks.deliver()
    assert state(org) == ("professional", "active")
    advance(clock, to=end + 3600)
    webhooks.deliver()
    renewal = next(
        i for i in stripe_emulator.objects("invoice") if i["billing_reason"] == "subscription_cycle"
    )
    lines = renewal["lines"]["data"]
    prorations = [
        ln
        for ln in lines
        if (
            ln["parent"]["subscription_item_details"]
            and ln["parent"]["subscription_item_details"]["proration"]
        )
        or (ln["parent"].get("invoice_item_details") or {}).get("proration")
    ]
    assert prorations, lines
    assert 0 < sum(ln["amount"] for ln in prorations) < 9900 - 2900  # the difference for ~2/3 of a month
    assert renewal["status"] == "paid"
    assert any(ln["amount"] == 9900 for ln in lines)  # the next month at the new price


def test_cancel_at_period_end_ends_at_the_period_end(
    clocked, webhooks, stripe_emulator, django_capture_on_commit_callbacks
):
    org, clock = clocked
    subscription_create(
        organization=org, plan="business", interval="month", payment_method="pm_card_visa", trial_days=0
    )
    end = period_end(stripe_emulator, org)
    subscription_cancel(organization=org, immediately=False)
    advance(clock, to=end - 3600)
    webhooks.deliver()
    assert state(org) == ("business", "active")
    advance(clock, to=end + 60)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.deliver()
    assert state(org) == ("free", "canceled")
    assert len([m for m in mail.outbox if "has ended" in m.subject]) == 1
    assert not [i for i in stripe_emulator.objects("invoice") if i["billing_reason"] == "subscription_cycle"]


def test_a_card_saved_later_is_used_for_renewals(clocked, webhooks, stripe_emulator):
    org, clock = clocked
    subscription_create(organization=org, plan="starter", interval="month", payment_method=None, trial_days=7)
    payment_method_attach(organization=org, payment_method_id="pm_card_visa")  # becomes the default
    advance(clock, days=7.5)
    webhooks.deliver()
    assert state(org) == ("starter", "active")

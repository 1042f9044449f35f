"""A month of a small business driven through the emulator on a test clock: every figure of the
analytics API equals the value worked out by hand in the comments.

The story (clock from 1 February 2026, 12:00 UTC; the month analysed is March 2026):

- Alpha: Starter (29.00/month) from 1 Feb, renews 1 Mar, places 2 calls (web) on 11 Mar 09:45,
  upgrades to Professional (99.00) on 11 Mar (the proration waits for the April invoice).
- Bravo: Professional from 1 Feb, asks on 10 Feb to cancel at the period end: gone 1 Mar 12:00.
- Charlie: Starter from 1 Feb; its card fails on the 1 Mar renewal; the owner puts in a good card
  and Stripe's retry on 4 Mar succeeds.
- Delta: Starter from 1 Feb; its card fails on 1 Mar and on every retry (4, 9, 16 Mar): Stripe
  cancels it on 16 Mar.
- Echo: Professional with the plan's 14-day trial from 20 Feb: the trial ends 6 Mar and the card
  pays 99.00 (converted). The cardholder disputes that charge on 20 Mar.
- Foxtrot: Starter with the 14-day trial from 22 Feb, cancels at the period end on 1 Mar: the
  trial ends 8 Mar without a payment (not converted).
- Golf: no plan; buys 1,000 credits (10.00) on 3 Mar and 5,000 credits (45.00) on 5 Mar, sends
  30 SMS (ios) at 09:30 and 10 (android) at 14:10 on 10 Mar and spends 360 credits on an export,
  and is refunded half of the 5,000 pack (22.50) on 12 Mar.

Django's clock travels with Stripe's, and the credit-expiry beat task runs once on 1 Mar.
"""

from __future__ import annotations

import pytest
import stripe
import time_machine

from billing.services import (
    payment_method_attach,
    subscription_cancel,
    subscription_change,
    subscription_create,
)
from credits.models import CreditPurchase
from credits.services import credit_consume, credit_grants_expire, credit_pack_purchase
from tests.analytics.scenario import Month, at
from tests.stripe_helpers import STRIPE_KEY
from usage.services import usage_track

pytestmark = pytest.mark.django_db

MARCH = {"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"}


@pytest.fixture
def month(webhooks, catalogue, stripe_emulator):
    with time_machine.travel(at("2026-02-01 12:00"), tick=False) as traveller:
        story = Month(traveller=traveller, webhooks=webhooks)
        story.start(at("2026-02-01 12:00"))
        yield story


def subscribe(org, plan, card="pm_card_visa", **kwargs):
    subscription_create(organization=org, plan=plan, interval="month", payment_method=card, **kwargs)


def get(client, path: str, params: dict) -> dict:
    response = client.get(f"/api/v1/analytics/{path}", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_month_of_figures(month, staff_client, stripe_emulator):
    alpha = month.organization("Alpha")
    bravo = month.organization("Bravo")
    charlie = month.organization("Charlie")
    delta = month.organization("Delta")
    subscribe(alpha, "starter", trial_days=0)
    subscribe(bravo, "professional", trial_days=0)
    subscribe(charlie, "starter", trial_days=0)
    subscribe(delta, "starter", trial_days=0)
    month.webhooks.deliver()

    month.to(at("2026-02-10 12:00"))
    subscription_cancel(organization=bravo, immediately=False)

    month.to(at("2026-02-20 12:00"))
    echo = month.organization("Echo")
    subscribe(echo, "professional")
    month.to(at("2026-02-22 12:00"))
    foxtrot = month.organization("Foxtrot")
    subscribe(foxtrot, "starter")
    golf = month.organization("Golf")
    payment_method_attach(organization=golf, payment_method_id="pm_card_visa", set_default=True)

    # The cards of Charlie and Delta stop working before their renewals.
    month.to(at("2026-02-28 12:00"))
    payment_method_attach(
        organization=charlie, payment_method_id="pm_card_chargeCustomerFail", set_default=True
    )
    payment_method_attach(
        organization=delta, payment_method_id="pm_card_chargeCustomerFail", set_default=True
    )

    month.to(at("2026-03-01 13:00"))
    assert credit_grants_expire() == 3  # the beat task: Bravo's, Charlie's and Delta's February credits
    subscription_cancel(organization=foxtrot, immediately=False)
    payment_method_attach(organization=charlie, payment_method_id="pm_card_mastercard", set_default=True)

    month.to(at("2026-03-03 10:00"))
    credit_pack_purchase(organization=golf, pack="credits-1k", idempotency_key="golf-1k")
    month.webhooks.deliver()
    month.to(at("2026-03-05 10:00"))
    big = credit_pack_purchase(organization=golf, pack="credits-5k", idempotency_key="golf-5k")
    month.webhooks.deliver()

    month.to(at("2026-03-10 09:30"))
    usage_track(
        organization=golf,
        metric="SMS_SENT",
        quantity=30,
        idempotency_key="golf-sms-1",
        dimensions={"platform": "ios"},
    )
    month.to(at("2026-03-10 14:10"))
    usage_track(
        organization=golf,
        metric="SMS_SENT",
        quantity=10,
        idempotency_key="golf-sms-2",
        dimensions={"platform": "android"},
    )
    credit_consume(organization=golf, amount=360, reason="Bulk export", idempotency_key="golf-export")
    month.to(at("2026-03-11 09:45"))
    usage_track(
        organization=alpha,
        metric="CALL_MADE",
        quantity=2,
        idempotency_key="alpha-call",
        dimensions={"platform": "web"},
    )
    month.to(at("2026-03-11 12:00"))
    subscription_change(organization=alpha, plan="professional")
    month.to(at("2026-03-12 12:00"))
    intent = CreditPurchase.objects.get(pk=big.outcome.purchase.pk).payment_intent_id
    stripe.Refund.create(payment_intent=intent, amount=2250, **STRIPE_KEY)
    month.webhooks.deliver()

    month.to(at("2026-03-20 12:00"))
    echo_charge = next(
        c
        for c in stripe_emulator.objects("charge")
        if c["amount"] == 9900
        and c["status"] == "succeeded"
        and c["created"] >= int(at("2026-03-06 12:00").timestamp())
    )
    stripe_emulator.create_dispute(echo_charge["id"])
    month.webhooks.deliver()
    month.to(at("2026-03-31 23:00"))

    revenue = get(staff_client, "revenue", MARCH)
    assert revenue == {
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-04-01T00:00:00Z",
        "currency": "usd",
        # Paying on 1 Apr: Alpha 99.00 (upgraded), Charlie 29.00 (recovered), Echo 99.00.
        "mrr": 22700,
        "arr": 22700 * 12,
        "arpu": 7567,  # 22700 / 3 = 7566.67
        "paying_customers": 3,
        # Paying on 1 Mar 00:00: Alpha 29, Bravo 99, Charlie 29, Delta 29 (Echo, Foxtrot in trial).
        "customers_at_start": 4,
        "mrr_at_start": 18600,
        "new_customers": 1,  # Echo
        "new_mrr": 9900,
        "expansion_mrr": 7000,  # Alpha 29 -> 99
        "contraction_mrr": 0,
        "churned_customers": 2,  # Bravo (cancelled at period end), Delta (retries exhausted)
        "churned_mrr": 12800,  # 9900 + 2900
        "churn_rate": "0.5000",  # 2 of 4
        "revenue_churn_rate": "0.6882",  # 12800 / 18600 = 0.68817
        "trials_ended": 2,  # Echo 6 Mar, Foxtrot 8 Mar
        "trials_converted": 1,  # Echo paid 99.00
        "trial_conversion_rate": "0.5000",
        # Charges succeeded in March: Alpha 2900 (1 Mar), Golf 1000 (3 Mar), Charlie 2900 (4 Mar
        # retry), Golf 4500 (5 Mar), Echo 9900 (6 Mar).
        "gross_volume": 21200,
        "refunds": 2250,  # half of Golf's 45.00
        "disputes": 9900,  # Echo's charge
        "net_volume": 21200 - 2250 - 9900,
        "payments_succeeded": 5,
        # Failed: Charlie 1 Mar; Delta 1, 4, 9 and 16 Mar.
        "payments_failed": 5,
        "payment_success_rate": "0.5000",
        "metered_revenue": 0,  # no plan with metered prices in the story
        "usage_inclusive_mrr": 22700,
    }
    # Mid-month, the history of each subscription counts (Alpha still on Starter, Delta still
    # past due, Echo converted): 2900 + 2900 + 2900 + 9900.
    early = get(staff_client, "revenue", {"start": "2026-03-01T00:00:00Z", "end": "2026-03-10T00:00:00Z"})
    assert (early["mrr"], early["paying_customers"], early["churned_customers"]) == (18600, 4, 1)

    credits = get(staff_client, "credits", MARCH)
    assert credits == {
        "start": "2026-03-01T00:00:00Z",
        "end": "2026-04-01T00:00:00Z",
        "at": "2026-04-01T00:00:00Z",
        "currency": "usd",
        "purchased": "6000",  # Golf's two packs
        "granted": "7000",  # March credits of Alpha (1,000), Charlie (1,000, once paid), Echo (5,000)
        "granted_by_source": {"purchase": "6000", "subscription": "7000"},
        "consumed": "404",  # Golf: 30 + 10 SMS and a 360-credit export; Alpha: 2 calls at 2 credits
        # February credits expired: Alpha 1,000 at its renewal, Bravo 5,000, Charlie 1,000 and
        # Delta 1,000 by the expiry task.
        "expired": "8000",
        "taken_back": "2500",  # half of the 5,000 pack, refunded
        # Unspent purchased credits: 600 of the 1,000 pack (400 used), 2,500 of the 5,000 pack.
        "liability": "3100",
        "liability_amount": 600 + 2250,  # 600 x 10.00/1,000 + 2,500 x 45.00/5,000, in cents
        "utilization": "0.0311",  # 404 / (6000 + 7000) = 0.03108
    }
    # Liability on 10 Mar 12:00: 970 of the first pack (30 used), all 5,000 of the second.
    before = get(staff_client, "credits", {**MARCH, "at": "2026-03-10T12:00:00Z"})
    assert (before["liability"], before["liability_amount"]) == ("5970", 970 + 4500)

    usage = get(staff_client, "usage", MARCH)
    assert usage["events"] == 3 and usage["credits"] == "44"
    assert usage["by_metric"] == [
        {"metric": "CALL_MADE", "quantity": "2", "events": 1, "credits": "4"},
        {"metric": "SMS_SENT", "quantity": "40", "events": 2, "credits": "40"},
    ]
    assert usage["by_platform"] == [
        {"platform": "android", "quantity": "10", "events": 1},
        {"platform": "ios", "quantity": "30", "events": 1},
        {"platform": "web", "quantity": "2", "events": 1},
    ]
    assert usage["peak_hour"] == 9  # 09:30 (Golf) and 09:45 (Alpha)
    assert [(h["hour"], h["events"]) for h in usage["by_hour"] if h["events"]] == [(9, 2), (14, 1)]
    assert [(r["name"], r["credits"]) for r in usage["leaders"]] == [("Golf", "40"), ("Alpha", "4")]

    # The emulator pays out each midnight what became available (2 days after each charge), net of
    # Stripe's fee (2.9% + 30 cents): Alpha's renewal on 4 Mar, Golf's 10.00 on 6 Mar, Charlie's
    # retry on 7 Mar, Golf's 45.00 on 8 Mar, Echo's 99.00 on 9 Mar; the refund and the dispute
    # leave the balance negative, so nothing after.
    payouts = get(staff_client, "payouts", MARCH)
    assert [(p["created"][:10], p["amount"]) for p in payouts["results"]] == [
        ("2026-03-09", 9900 - 317),
        ("2026-03-08", 4500 - 160),
        ("2026-03-07", 2900 - 114),
        ("2026-03-06", 1000 - 59),
        ("2026-03-04", 2900 - 114),
    ]
    assert payouts["total"] == 20436 and {p["status"] for p in payouts["results"]} == {"paid"}
    txns = get(staff_client, "balance-transactions", MARCH)
    assert txns["count"] == 12  # 5 charges, 5 payouts, 1 refund, 1 dispute
    assert txns["totals"] == {
        "charge": 20436,
        "payout": -20436,
        "refund": -2250,
        "dispute": -9900 - 1500,  # the amount and the 15.00 dispute fee
        "fees": 114 + 59 + 114 + 160 + 317 + 1500,
    }
    refund = next(t for t in txns["results"] if t["type"] == "refund")
    assert (refund["amount"], refund["status"]) == (-2250, "available")  # available since 14 Mar

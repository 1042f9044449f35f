"""A few months of business history for `make run`'s staff dashboard, made the way real history is
made: organizations whose Stripe customers live on one test clock that starts about four months
ago, subscribing, upgrading, cancelling, failing and recovering payments, buying credits (one
purchase disputed) while the clock moves forward to now, so Stripe renews, retries, cancels and
pays out on the way. The seed runs before the web server is up, so the events Stripe sent are then
processed through dj-stripe and the product's handlers as a catch-up (`stripe_events_catch_up`),
exactly as their webhooks would have been. Idempotent: it runs once per database."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from billing.models import Organization
from billing.services import (
    organization_create,
    payment_method_attach,
    stripe_events_catch_up,
    stripe_test_clock_advance,
    stripe_test_clock_create,
    subscription_cancel,
    subscription_change,
    subscription_create,
)
from config.exceptions import ApplicationError
from credits.services import credit_consume, credit_pack_purchase, subscription_credits_catch_up

from .stripe_sync import stripe_invoices_backfill

log = logging.getLogger(__name__)

SUFFIX = " (demo history)"
DAYS = 125  # the clock starts this many days ago: four monthly renewals fall inside


# What the dashboard reads: subscription history, paid and failed invoices (credits, conversions),
# charges, refunds and disputes, payouts. The rest arrives by webhook once the site is up.
CATCH_UP = ("customer.subscription.", "invoice.paid", "invoice.payment_failed", "charge.", "payout.")


@dataclass(frozen=True)
class AnalyticsDemo:
    organizations: int
    events: int
    created: bool


def _org(name: str, clock: str) -> Organization:
    return organization_create(
        name=name + SUFFIX, billing_email=f"billing@{name.lower()}.example", test_clock=clock
    )


def _subscribe(org: Organization, plan: str, *, trial: bool = False) -> None:
    subscription_create(
        organization=org,
        plan=plan,
        interval="month",
        payment_method="pm_card_visa",
        trial_days=None if trial else 0,
    )


def _card(org: Organization, card: str) -> None:
    payment_method_attach(organization=org, payment_method_id=card, set_default=True)


def analytics_demo_seed(*, now: datetime | None = None) -> AnalyticsDemo:
    if Organization.objects.filter(name__endswith=SUFFIX).exists():
        return AnalyticsDemo(organizations=0, events=0, created=False)
    now = now or timezone.now()
    start = (now - timedelta(days=DAYS)).replace(minute=0, second=0, microsecond=0)
    began = time.monotonic()
    clock = stripe_test_clock_create(frozen_time=int(start.timestamp()), name="demo history")

    def day(n: float) -> None:
        target = min(start + timedelta(days=n), now - timedelta(minutes=1))
        stripe_test_clock_advance(clock_id=clock, frozen_time=int(target.timestamp()))

    orgs = {name: _org(name, clock) for name in ("Northwind", "Contoso", "Globex", "Initech", "Umbrella")}
    _subscribe(orgs["Northwind"], "starter")
    _subscribe(orgs["Contoso"], "professional")
    _subscribe(orgs["Globex"], "business")
    _subscribe(orgs["Initech"], "starter")
    _subscribe(orgs["Umbrella"], "starter")
    day(45)
    subscription_change(organization=orgs["Northwind"], plan="professional")  # expansion
    day(50)
    subscription_cancel(organization=orgs["Contoso"], immediately=False)  # churns at its period end
    day(70)
    _card(orgs["Initech"], "pm_card_chargeCustomerFail")  # every retry fails: cancelled by Stripe
    day(75)
    wayne = orgs["Wayne"] = _org("Wayne", clock)
    _card(wayne, "pm_card_visa")
    credit_pack_purchase(organization=wayne, pack="credits-5k", idempotency_key="demo-history:wayne:5k")
    day(76)
    credit_pack_purchase(
        organization=wayne,
        pack="credits-1k",
        payment_method="pm_card_createDispute",  # the cardholder disputes this charge
        idempotency_key="demo-history:wayne:1k",
    )
    day(100)
    orgs["Hooli"] = _org("Hooli", clock)
    _subscribe(orgs["Hooli"], "professional", trial=True)  # converts 14 days later
    day(102)
    orgs["Stark"] = _org("Stark", clock)
    _subscribe(orgs["Stark"], "starter", trial=True)
    day(103)
    subscription_cancel(organization=orgs["Stark"], immediately=False)  # the trial does not convert
    day(110)
    _card(orgs["Umbrella"], "pm_card_chargeCustomerFail")  # its last renewal fails: past due now
    day(DAYS)
    log.info("demo history: clock done in %.1fs", time.monotonic() - began)
    events = stripe_events_catch_up(types=CATCH_UP)
    log.info("demo history: %d events in %.1fs", events, time.monotonic() - began)
    stripe_invoices_backfill(organizations=Organization.objects.filter(name__endswith=SUFFIX))
    subscription_credits_catch_up()  # the plans' credits now, not when the worker gets to them
    spending = [
        (wayne, 1200, "Bulk export"),
        (orgs["Northwind"], 800, "Campaign send"),
        (orgs["Globex"], 2500, "AI messages"),
    ]
    for org, amount, reason in spending:
        try:
            credit_consume(
                organization=org, amount=amount, reason=reason, idempotency_key=f"demo-history:{reason}"
            )
        except ApplicationError as exc:  # demo consumption is optional
            log.info("demo history: %s could not consume: %s", org.name, exc.message)
    return AnalyticsDemo(organizations=len(orgs), events=events, created=True)

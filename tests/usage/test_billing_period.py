"""The period usage counts in (quotas and metered billing) when the mirrored subscription
period has ended but its renewal webhook has not arrived: rolled forward by the price's interval
from the billing cycle anchor, never the calendar month, which would overlap the ended period
and bill its usage through the meters a second time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from djstripe.models import Subscription

from billing import selectors, stripe_data
from billing.models import Organization
from billing.selectors import calendar_month, organization_billing_period
from billing.services import subscription_create
from usage.models import UsageMeterEvent
from usage.services import usage_events_record, usage_meter_sync

pytestmark = pytest.mark.django_db


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def subscription(anchor: datetime, start: datetime, end: datetime, interval="month", count=1) -> dict:
    return {
        "billing_cycle_anchor": int(anchor.timestamp()),
        "items": {
            "data": [
                {
                    "current_period_start": int(start.timestamp()),
                    "current_period_end": int(end.timestamp()),
                    "price": {"recurring": {"interval": interval, "interval_count": count}},
                }
            ]
        },
    }


def test_a_period_anchored_on_the_31st_rolls_forward_as_stripe_renews_it():
    anchor = at(2027, 1, 31, 9)
    sub = subscription(anchor, anchor, at(2027, 2, 28, 9))
    assert selectors._period_rolled_forward(
        sub, start=anchor, end=at(2027, 2, 28, 9), now=at(2027, 2, 28, 10)
    ) == (
        at(2027, 2, 28, 9),
        at(2027, 3, 31, 9),
    )
    # Two renewals missed: the period covering now, from the anchor (not from the last end).
    assert selectors._period_rolled_forward(
        sub, start=anchor, end=at(2027, 2, 28, 9), now=at(2027, 4, 15)
    ) == (
        at(2027, 3, 31, 9),
        at(2027, 4, 30, 9),
    )


@pytest.mark.parametrize(
    ("interval", "count", "now", "expected"),
    [
        ("day", 1, at(2027, 1, 3, 12), (at(2027, 1, 3), at(2027, 1, 4))),
        ("week", 2, at(2027, 1, 20), (at(2027, 1, 15), at(2027, 1, 29))),
        ("year", 1, at(2028, 6, 1), (at(2028, 1, 1), at(2029, 1, 1))),
    ],
)
def test_other_intervals_roll_forward(interval, count, now, expected):
    anchor = at(2027, 1, 1)
    first_end = {"day": at(2027, 1, 2), "week": at(2027, 1, 15), "year": at(2028, 1, 1)}[interval]
    sub = subscription(anchor, anchor, first_end, interval, count)
    assert selectors._period_rolled_forward(sub, start=anchor, end=first_end, now=now) == expected


def test_an_unknown_interval_gives_no_rolled_period():
    anchor = at(2027, 1, 1)
    sub = subscription(anchor, anchor, at(2027, 2, 1), interval="fortnight")
    assert selectors._period_rolled_forward(sub, start=anchor, end=at(2027, 2, 1), now=at(2027, 2, 2)) is None


@pytest.fixture
def business(billing_org, webhooks, django_capture_on_commit_callbacks):
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
    assert org.subscription_status == "active"
    return org


def mirrored_period(org) -> tuple[datetime, datetime]:
    data = Subscription.objects.get(id=org.stripe_subscription_id).stripe_data
    return stripe_data.subscription_period(data)


def test_the_organizations_period_inside_after_and_before_the_mirrored_one(business):
    start, end = mirrored_period(business)
    assert organization_billing_period(organization=business, now=start + timedelta(days=3)) == (start, end)
    rolled_start, rolled_end = organization_billing_period(
        organization=business, now=end + timedelta(hours=1)
    )
    assert rolled_start == end and rolled_end - end >= timedelta(days=28)
    assert (
        rolled_end
        == organization_billing_period(organization=business, now=rolled_end - timedelta(seconds=1))[1]
    )
    # A clock behind the mirrored period (a test clock ahead of real time): the calendar month.
    before = start - timedelta(days=40)
    assert organization_billing_period(organization=business, now=before) == calendar_month(before)


def test_usage_billed_in_an_ended_period_is_not_billed_again_before_the_renewal_webhook(
    business, stripe_emulator
):
    _start, end = mirrored_period(business)
    with time_machine.travel(end - timedelta(days=2), tick=False):
        result = usage_events_record(
            organization=business,
            events=[{"metric": "SMS_SENT", "quantity": 100_050, "idempotency_key": "late-month"}],
        )
        assert result.accepted == 1
        assert usage_meter_sync(organization=business).sent == 1
    # The period has ended; its renewal webhook has not arrived yet. A calendar-month window
    # would hold the same events again (they are days before the end) and queue them twice.
    with time_machine.travel(end + timedelta(hours=1), tick=False):
        again = usage_meter_sync(organization=business)
    assert (again.queued, again.sent) == (0, 0)
    assert UsageMeterEvent.objects.filter(organization_id=business.pk).count() == 1

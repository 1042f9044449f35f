"""`make run`'s history seed: months of business driven through the emulator's test clock, then
caught up through dj-stripe's handlers, give a dashboard with non-zero figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from invoices.analytics import credits_report, mrr_series, payout_list, revenue_report, staff_dashboard_get
from invoices.services.analytics_demo import analytics_demo_seed

pytestmark = pytest.mark.django_db


def test_the_history_seed_gives_non_zero_figures_once(catalogue, celery_eager, stripe_emulator):
    seeded = analytics_demo_seed()
    assert seeded.created and seeded.organizations == 8 and seeded.events > 30
    now = timezone.now()
    series = [amount for _, amount in mrr_series(end=now)]
    assert sum(1 for amount in series if amount > 0) >= 4  # four months of paying subscriptions
    # Now: Northwind 99 (upgraded), Globex 299, Hooli 99 (converted), Umbrella 29 (past due).
    report = revenue_report(start=now - timedelta(days=DAYS_BACK), end=now)
    assert report.mrr == 9900 + 29900 + 9900 + 2900
    assert report.churned_customers == 2  # Contoso (cancelled), Initech (payments failed)
    assert report.trials_ended == 2 and report.trials_converted == 1  # Hooli yes, Stark no
    assert report.disputes == 1000 and report.payments_failed > 0 and report.gross_volume > 0
    credits = credits_report(start=now - timedelta(days=1), end=now + timedelta(seconds=1))
    # Wayne bought 5,000 + 1,000; the disputed 1,000 were taken back; 1,200 spent.
    assert credits.liability == 3800
    assert credits.consumed == 1200 + 800 + 2500  # Wayne, Northwind and Globex spent credits today
    board = staff_dashboard_get()
    assert board.failed_payments and board.open_disputes
    assert {row.plan for row in board.subscriptions} >= {"professional", "business", "starter"}
    # The emulator paid out the available balance as days passed; the mirror has every payout.
    payouts = payout_list(start=now - timedelta(days=DAYS_BACK + 30), end=now)
    assert len(payouts) == len(stripe_emulator.objects("payout")) >= 5
    again = analytics_demo_seed()
    assert not again.created


DAYS_BACK = 100

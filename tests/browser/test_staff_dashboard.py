"""The staff dashboard in Chromium: staff open it from the admin index, read MRR from the chart's
page, and follow a figure to the admin list behind it."""

import re

import pytest
from django.contrib.auth import get_user_model

from billing.services import organization_create, subscription_create, user_get_or_create
from tests.browser.conftest import check, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-42"


def test_staff_open_the_dashboard_from_the_admin_and_follow_a_figure(page, live_server, stripe_server):
    from playwright.sync_api import expect

    owner, _ = user_get_or_create(email="grace@example.com", password=PASSWORD)
    org = organization_create(name="Compilers Inc", billing_email="ap@compilers.test", owner=owner)
    subscription_create(
        organization=org, plan="starter", interval="month", payment_method="pm_card_visa", trial_days=0
    )
    staff, _ = user_get_or_create(email="staff@example.com", password=PASSWORD)
    get_user_model().objects.filter(pk=staff.pk).update(is_staff=True, is_superuser=True)

    sign_in(page, live_server.url, "staff@example.com", PASSWORD)
    page.goto(f"{live_server.url}/admin/")
    page.click("#staff-dashboard-link h2 a")
    expect(page).to_have_url(re.compile(r"/admin/dashboard/$"))
    expect(page.locator("#tile-mrr")).to_contain_text("$29.00")
    expect(page.locator("#tile-mrr")).to_contain_text("ARR $348.00")
    expect(page.locator("#mrr-chart svg")).to_be_visible()
    expect(page.locator("#tile-reconcile")).to_contain_text("No reconcile run recorded")
    check(page, "staff-dashboard")
    page.click("#tile-mrr .figure a")
    expect(page).to_have_url(re.compile(r"/admin/djstripe/subscription/\?status=active"))
    expect(page.locator("#result_list")).to_contain_text("Compilers Inc")

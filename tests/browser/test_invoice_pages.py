"""The invoice pages in Chromium: a paid subscription's invoice arrives by webhook, is listed, opens,
and its PDF downloads with the browser's session."""

import re

import pytest

from billing.services import organization_create, subscription_create, user_get_or_create
from tests.browser.conftest import check, reload_until, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-42"


def test_invoice_listed_opened_and_its_pdf_downloaded(page, live_server, stripe_server):
    from playwright.sync_api import expect

    owner, _ = user_get_or_create(email="ada@example.com", password=PASSWORD)
    org = organization_create(name="Analytical Engines", billing_email="ap@engines.test", owner=owner)
    org.trial_used_at = org.created_at
    org.save(update_fields=["trial_used_at"])
    subscription_create(organization=org, plan="starter", interval="month", payment_method="pm_card_visa")

    sign_in(page, live_server.url, "ada@example.com", PASSWORD)
    page.goto(f"{live_server.url}/billing/{org.pk}/")
    page.click("[data-nav=invoices]")
    expect(page).to_have_url(re.compile(rf"/billing/{org.pk}/invoices/$"))
    reload_until(page, lambda: page.locator("a:text('PDF')").count() >= 1)
    check(page, "invoices")
    pdf_url = page.locator("a:text('PDF')").first.get_attribute("href")
    page.locator("tbody a").first.click()
    expect(page.locator("body")).to_contain_text("$29.00")
    screenshot_name = "invoice-detail"
    check(page, screenshot_name)
    response = page.request.get(f"{live_server.url}{pdf_url}")
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.body()[:5] == b"%PDF-"

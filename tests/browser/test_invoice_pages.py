"""The invoice pages in Chromium: a paid subscription's invoice arrives by webhook and is listed on
the pages frame; the status filter narrows the list in place (htmx); the invoice opens, goes to
the billing e-mail, and its PDF downloads with the browser's session; the list works at 375 px."""

import re

import pytest
from django.core import mail

from billing.services import organization_create, subscription_create, user_get_or_create
from tests.browser.conftest import check, reload_until, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-42"


def test_invoice_listed_filtered_opened_sent_and_its_pdf_downloaded(page, live_server, stripe_server):
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
    expect(page.locator("[data-nav=invoices]")).to_have_attribute("aria-current", "page")
    reload_until(page, lambda: page.locator("[data-invoice][data-status=paid]").count() >= 1)
    check(page, "invoices")

    page.select_option("#id_status", "open")
    page.click("#filter-invoices")
    expect(page).to_have_url(re.compile(r"status=open"))
    expect(page.locator("#invoices")).to_contain_text("No invoices match these filters.")
    check(page, "invoices-filtered")
    page.select_option("#id_status", "paid")
    page.click("#filter-invoices")
    expect(page.locator("[data-invoice][data-status=paid]")).to_have_count(1)

    page.locator("[data-invoice-link]").first.click()
    expect(page.locator("#invoice-total")).to_have_text("$29.00")
    expect(page.locator("#invoice-status")).to_have_text("Paid")
    page.click("#send-invoice")
    expect(page.locator("#messages")).to_contain_text("on its way to ap@engines.test")
    reload_until(page, lambda: page.locator("#invoice-sends [data-send-status=sent]").count() == 1)
    assert [m.to for m in mail.outbox] == [["ap@engines.test"]]
    check(page, "invoice-detail")
    with page.expect_download() as download_info:
        page.click("#download-pdf")
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"

    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check(page, "invoice-detail-375px")
    page.goto(f"{live_server.url}/billing/{org.pk}/invoices/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check(page, "invoices-375px")

    # The switcher opens the same page of the person's other organization.
    other = organization_create(name="Difference Engines", billing_email="ap@difference.test", owner=owner)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.reload()
    page.select_option("#switch-organization", str(other.pk))
    page.click("form.switcher button[type=submit]")
    expect(page).to_have_url(re.compile(rf"/billing/{other.pk}/invoices/$"))
    expect(page.locator("#organization-name")).to_have_text("Difference Engines")
    expect(page.locator("#invoices")).to_contain_text("No invoices yet.")
    check(page, "invoices-switched-organization")

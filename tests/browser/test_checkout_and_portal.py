"""A person on the tenant pages, in Chromium: sign in, subscribe through the emulator's hosted
Checkout page, see the plan arrive by webhook, then cancel in the hosted customer portal."""

import re

import pytest

from billing.catalogue import catalogue_seed
from billing.models import Plan, PlanPrice
from billing.services import (
    organization_create,
    stripe_catalog_sync,
    user_get_or_create,
    webhook_endpoint_register,
)
from tests.browser.conftest import assert_accessible, screenshot
from tests.processes import stripe_emulator_server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_subscribe_with_checkout_and_cancel_in_the_portal(page, live_server, tmp_path, celery_eager):
    from playwright.sync_api import expect

    with stripe_emulator_server(tmp_path):
        catalogue_seed(Plan, PlanPrice)
        stripe_catalog_sync()
        owner, _ = user_get_or_create(email="ada@example.com", password="correct-horse-42")
        org = organization_create(name="Analytical Engines", billing_email="ap@engines.test", owner=owner)
        webhook_endpoint_register(base_url=live_server.url)

        page.goto(f"{live_server.url}/accounts/login/")
        screenshot(page, "login")
        assert_accessible(page)
        page.fill("#id_username", "ada@example.com")
        page.fill("#id_password", "correct-horse-42")
        page.click("button[type=submit]")
        screenshot(page, "organizations")
        assert_accessible(page)
        page.click(f"text={org.name}")
        expect(page.locator("#plan-name")).to_have_text("Free")
        screenshot(page, "billing-free-plan")
        assert_accessible(page)

        page.click("button[data-plan=starter][data-interval=month]")
        expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
        screenshot(page, "emulator-checkout")
        page.click("button[name=card][value=decline]")
        expect(page.locator("body")).to_contain_text("declined")
        page.click("button[name=card][value=success]")
        expect(page).to_have_url(re.compile(r"/billing/.+\?checkout=success"))

        for _ in range(30):  # the webhooks arrive from the emulator server a moment later
            if page.locator("#plan-name").inner_text() == "Starter":
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(page.locator("#plan-name")).to_have_text("Starter")
        expect(page.locator("#subscription-status")).to_have_text("trialing")
        screenshot(page, "billing-starter-trialing")
        assert_accessible(page)

        page.click("#open-portal")
        expect(page).to_have_url(re.compile(r"/p/session/bps_"))
        screenshot(page, "emulator-portal")
        page.click("button[name=action][value=cancel_now]")
        page.click("a[data-return]")
        for _ in range(30):
            if page.locator("#plan-name").inner_text() == "Free":
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(page.locator("#plan-name")).to_have_text("Free")
        expect(page.locator("#subscription-status")).to_have_text("canceled")
        screenshot(page, "billing-canceled")
        assert_accessible(page)

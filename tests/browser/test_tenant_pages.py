"""People on the tenant pages, in Chromium, against the live server and a Stripe emulator server
(its hosted Checkout and Portal pages, its signed webhooks): sign in, subscribe through Checkout,
change plan at Stripe's previewed price, cancel and resume; add cards through Checkout in setup
mode and choose the default; buy credits and see the balance change; a member sees no action.
Every page is checked with axe-core and photographed under .local/screenshots/."""

import re

import pytest

from billing.models import Membership, Role
from billing.services import organization_create, payment_method_attach, user_get_or_create
from tests.browser.conftest import check, reload_until, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-42"


@pytest.fixture
def owner(stripe_server):
    user, _ = user_get_or_create(email="ada@example.com", password=PASSWORD)
    return user


@pytest.fixture
def org(owner):
    return organization_create(name="Analytical Engines", billing_email="ap@engines.test", owner=owner)


def test_sign_in_subscribe_through_checkout_change_plan_cancel_and_resume(page, live_server, org):
    from playwright.sync_api import expect

    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    check(page, "login")
    sign_in(page, base, "ada@example.com", PASSWORD)
    check(page, "organizations")
    page.click(f"text={org.name}")
    expect(page.locator("#plan-name")).to_have_text("Free")
    check(page, "dashboard-free")

    page.click("[data-nav=upgrade]")
    expect(page.locator("[data-plan-card=free] [data-current-plan]")).to_be_visible()
    page.click("[data-interval-toggle=year]")
    expect(page.locator("[data-plan-card=starter] .price")).to_contain_text("$290.00")
    page.click("[data-interval-toggle=month]")
    check(page, "plans-free")
    # Checkout left without paying returns to the plans it was started from.
    page.click("button[data-plan=starter][data-interval=month]")
    expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
    page.click("a:text('Back to')")
    expect(page).to_have_url(re.compile(rf"/billing/{org.pk}/upgrade/\?checkout=canceled$"))
    expect(page.locator("#messages")).to_contain_text("Checkout was canceled")
    page.click("button[data-plan=starter][data-interval=month]")
    expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
    check(page, "emulator-checkout")
    page.click("button[name=card][value=decline]")
    expect(page.locator("body")).to_contain_text("declined")
    page.click("button[name=card][value=success]")
    expect(page).to_have_url(re.compile(r"/billing/.+/\?checkout=success"))
    reload_until(page, lambda: page.locator("#plan-name").inner_text() == "Starter")
    expect(page.locator("#subscription-status")).to_have_text("trialing")
    expect(page.locator("#trial-end")).to_be_visible()
    check(page, "dashboard-starter-trialing")

    # A plan change: Stripe's preview appears under the table (htmx), then the change on confirmation.
    page.click("#change-plan")
    expect(page.locator("[data-plan-card=starter] [data-current-plan]")).to_be_visible()
    page.click("a[data-plan=professional][data-interval=month]")
    expect(page.locator("#preview")).to_contain_text("Switch to Professional")
    expect(page.locator("#preview-amount-due")).to_have_text("$99.00")
    assert "/upgrade/preview" not in page.url  # the fragment came in place
    check(page, "plans-change-preview")
    page.click("#confirm-change")
    expect(page.locator("#messages")).to_contain_text("Your plan is now Professional")
    expect(page.locator("#plan-name")).to_have_text("Professional")
    # Without JavaScript the preview is a page of its own, with the same confirmation form.
    page.goto(f"{base}/billing/{org.pk}/upgrade/preview?plan=business&interval=month")
    expect(page.locator("#preview")).to_contain_text("Switch to Business")
    check(page, "plans-change-preview-page")
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{base}/billing/{org.pk}/upgrade/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check(page, "plans-375px")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{base}/billing/{org.pk}/")

    # The portal returns to the page it was opened from; cancel at the period end, then resume here.
    page.click("#open-portal")
    expect(page).to_have_url(re.compile(r"/p/session/bps_"))
    check(page, "emulator-portal")
    page.click("button[name=action][value=cancel_at_period_end]")
    page.click("a[data-return]")
    expect(page).to_have_url(re.compile(rf"/billing/{org.pk}/$"))
    reload_until(page, lambda: page.locator("[data-alert=canceling]").count() == 1)
    check(page, "dashboard-canceling")
    page.click("button[data-action=canceling]")
    expect(page.locator("#messages")).to_contain_text("will renew as usual")
    expect(page.locator("[data-alert=canceling]")).to_have_count(0)


def test_add_cards_through_checkout_and_make_one_default(page, live_server, org):
    from playwright.sync_api import expect

    sign_in(page, live_server.url, "ada@example.com", PASSWORD)
    page.goto(f"{live_server.url}/billing/{org.pk}/payment-methods/")
    expect(page.locator("main")).to_contain_text("No saved card yet.")
    check(page, "payment-methods-empty")
    for n in (1, 2):
        page.click("#add-card")
        expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
        if n == 1:
            check(page, "emulator-checkout-setup")
        page.click("button[name=card][value=success]")
        expect(page).to_have_url(re.compile(rf"/billing/{org.pk}/payment-methods/$"))
        expect(page.locator("#messages")).to_contain_text("The card was saved.")
        expect(page.locator("[data-card]")).to_have_count(n)
    first_default = page.locator("[data-card][data-default]").get_attribute("data-card")
    other = page.locator("[data-card]:not([data-default])").get_attribute("data-card")
    page.click(f"button[data-make-default='{other}']")
    expect(page.locator("#messages")).to_contain_text("The default card was changed")
    expect(page.locator(f"[data-card='{other}'][data-default]")).to_have_count(1)
    expect(page.locator(f"[data-card='{first_default}'][data-default]")).to_have_count(0)
    check(page, "payment-methods")
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check(page, "payment-methods-375px")


def test_buy_credits_and_see_the_balance_change(page, live_server, org):
    from playwright.sync_api import expect

    payment_method_attach(organization=org, payment_method_id="pm_card_visa")
    sign_in(page, live_server.url, "ada@example.com", PASSWORD)
    page.goto(f"{live_server.url}/billing/{org.pk}/credits/")
    expect(page.locator("#credit-balance")).to_have_text("0")
    check(page, "credits-empty")

    page.click("button[data-buy='credits-1k']")
    expect(page.locator("#messages")).to_contain_text("1,000 credits were added")
    expect(page.locator("#credit-balance")).to_have_text("1,000")
    expect(page.locator("[data-kind=grant]")).to_have_count(1)

    page.click("button[data-buy-checkout='credits-5k']")
    expect(page).to_have_url(re.compile(r"/c/pay/cs_"))
    page.click("button[name=card][value=success]")
    expect(page).to_have_url(re.compile(r"/credits/\?checkout=success"))
    reload_until(page, lambda: page.locator("#credit-balance").inner_text() == "6,000")

    page.fill("#id_refill-threshold", "200")
    page.check("#id_refill-enabled")
    page.click("#save-auto-refill")
    expect(page.locator("#auto-refill-state")).to_contain_text("On: buys")
    page.fill("#id_low-threshold", "-1")
    page.click("#save-low-balance")
    expect(page.locator("#low-balance .field-error")).to_be_visible()
    check(page, "credits-settings-error")
    page.goto(f"{live_server.url}/billing/{org.pk}/credits/")
    page.select_option("#id_kind", "grant")
    page.click("#filter-transactions")
    expect(page).to_have_url(re.compile(r"kind=grant"))
    expect(page.locator("[data-kind=grant]")).to_have_count(2)
    check(page, "credits")
    page.goto(f"{live_server.url}/billing/{org.pk}/")
    expect(page.locator("#panel-credits #credit-balance")).to_have_text("6,000")
    page.set_viewport_size({"width": 375, "height": 800})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check(page, "dashboard-375px")
    page.goto(f"{live_server.url}/billing/{org.pk}/credits/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check(page, "credits-375px")


def test_a_member_sees_no_action_buttons(page, live_server, org):
    from django.utils import timezone
    from playwright.sync_api import expect

    from invoices.models import Invoice

    payment_method_attach(organization=org, payment_method_id="pm_card_visa")
    invoice = Invoice.objects.create(
        organization=org, kind="stripe", status="open", number="MEMBER-0001", stripe_id="in_member_view",
        total=2900, subtotal=2900, amount_due=2900, amount_remaining=2900, currency="usd",
        hosted_url="https://invoice.stripe.test/i/member", created_at=timezone.now(),
    )  # fmt: skip
    member, _ = user_get_or_create(email="bob@example.com", password=PASSWORD)
    Membership.objects.create(user=member, organization=org, role=Role.MEMBER)
    sign_in(page, live_server.url, "bob@example.com", PASSWORD)
    for path, name in [
        ("", "member-dashboard"),
        ("upgrade/", "member-plans"),
        ("payment-methods/", "member-payment-methods"),
        ("credits/", "member-credits"),
        ("usage/", "member-usage"),
        ("invoices/", "member-invoices"),
        (f"invoices/{invoice.pk}/", "member-invoice"),
    ]:
        page.goto(f"{live_server.url}/billing/{org.pk}/{path}")
        expect(page.locator("main form[method=post]")).to_have_count(0)
        expect(
            page.locator(
                "main button[data-plan], main [data-buy], main #add-card,"
                " main #send-invoice, main #pay-online"
            )
        ).to_have_count(0)
        check(page, name)
    expect(page.locator("main")).to_contain_text(
        "Someone with the billing role or higher can e-mail this invoice."
    )
    page.goto(f"{live_server.url}/billing/{org.pk}/credits/")
    expect(page.locator("main")).to_contain_text("Someone with the billing role or higher can buy credits.")
    csrf = {"X-CSRFToken": next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")}
    response = page.request.post(
        f"{live_server.url}/billing/{org.pk}/credits/buy",
        form={"pack": "credits-1k", "idempotency_key": "forced"},
        headers=csrf,
    )
    assert response.status == 403
    forced = page.request.post(f"{live_server.url}/billing/{org.pk}/invoices/{invoice.pk}/send", headers=csrf)
    assert forced.status == 403 and not invoice.sends.exists()


def test_hit_a_quota_and_follow_the_upgrade_link_from_the_402(page, live_server, org, settings):
    """A platform's usage call is refused with 402 quota_exceeded; its `upgrade_url` opens the plans
    page (after signing in), where the owner can start Checkout."""
    from playwright.sync_api import expect
    from rest_framework.test import APIClient

    from billing.services import api_key_create

    settings.SITE_URL = live_server.url
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(organization=org, name='app').raw_key}")
    track = f"/api/v1/organizations/{org.pk}/usage/track"
    refused = api.post(
        track, {"metric": "CAMPAIGN_LAUNCHED", "quantity": 3, "idempotency_key": "t1"}, format="json"
    )
    assert refused.status_code == 402, refused.content
    body = refused.json()
    assert body["error"] == "quota_exceeded" and body["quota"]["metric"] == "CAMPAIGN_LAUNCHED"
    assert body["upgrade_url"] == f"{live_server.url}/billing/{org.pk}/upgrade/"

    page.goto(body["upgrade_url"])
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", "ada@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    expect(page).to_have_url(re.compile(rf"/billing/{org.pk}/upgrade/$"))
    expect(page.locator("[data-plan-card=free] [data-current-plan]")).to_be_visible()
    expect(page.locator("button[data-plan=business][data-interval=month]")).to_be_visible()
    check(page, "plans-from-quota-402")
    events = [
        {"metric": "SMS_SENT", "quantity": 45, "idempotency_key": "s1", "dimensions": {"platform": "ios"}},
        {"metric": "CALL_MADE", "quantity": 4, "idempotency_key": "c1", "dimensions": {"platform": "web"}},
    ]
    assert (
        api.post(f"/api/v1/organizations/{org.pk}/usage/events", {"events": events}, format="json").json()[
            "accepted"
        ]
        == 2
    )
    page.goto(f"{live_server.url}/billing/{org.pk}/usage/")
    expect(page.locator("[data-chart=SMS_SENT] svg.chart")).to_be_visible()
    expect(page.locator("[data-usage=SMS_SENT]")).to_contain_text("45 of 50")
    check(page, "usage")
    page.goto(f"{live_server.url}/billing/{org.pk}/")
    expect(page.locator("[data-alert=quota-SMS_SENT]")).to_contain_text("90%")
    expect(page.locator("[data-alert=quota-CAMPAIGN_LAUNCHED]")).to_have_count(0)
    check(page, "dashboard-usage-alerts")
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(f"{live_server.url}/billing/{org.pk}/usage/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    check(page, "usage-375px")

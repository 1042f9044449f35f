"""The billing app's tenant pages with Django's test client against the in-process emulator: the
dashboard, plans with Checkout and prorated changes, payment methods through Checkout in setup
mode, alerts, the switcher. (Chromium drives the same pages in tests/browser/.)"""

import re

import pytest
import stripe
from django.urls import reverse
from djstripe.models import PaymentMethod

from billing.models import Membership, Role
from billing.selectors import organization_customer_get, subscription_summary_get
from billing.services import organization_create, subscription_create
from tests.billing.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_browser(client, billing_org, billing_owner):
    client.force_login(billing_owner)
    return client


def customer_id(org) -> str:
    return organization_customer_get(organization=org).id


def html_of(response) -> str:
    assert response.status_code == 200, (response.status_code, response.content[:500])
    return response.content.decode()


def dashboard(client, org) -> str:
    return html_of(client.get(f"/billing/{org.id}/"))


def test_free_organization_dashboard_has_the_panels_nav_and_no_alert(owner_browser, billing_org):
    html = dashboard(owner_browser, billing_org)
    assert 'id="plan-name">Free<' in html
    assert 'id="panel-plan"' in html and 'id="panel-credits"' in html
    for key in ("dashboard", "upgrade", "credits", "payment-methods"):
        assert f'data-nav="{key}"' in html
    assert 'aria-current="page" data-nav="dashboard"' in html
    assert "data-alert=" not in html
    assert "Change plan" in html and "open-portal" not in html


def test_upgrade_page_lists_plans_by_interval_with_trials_and_the_current_plan(owner_browser, billing_org):
    monthly = html_of(owner_browser.get(f"/billing/{billing_org.id}/upgrade/"))
    assert 'data-plan-card="free"' in monthly and 'data-plan-card="business"' in monthly
    assert re.search(r'data-plan-card="free".*?data-current-plan', monthly, re.S)
    assert "$29.00" in monthly and 'data-plan="starter" data-interval="month"' in monthly
    assert 'data-trial-days="14"' in monthly
    assert "1,000 credits included" in monthly
    yearly = html_of(owner_browser.get(f"/billing/{billing_org.id}/upgrade/?interval=year"))
    assert "$290.00" in yearly and 'data-plan="starter" data-interval="year"' in yearly
    assert 'aria-current="true" data-interval-toggle="year"' in yearly


def test_checkout_from_the_plans_subscribes_and_returns_to_the_dashboard(
    owner_browser, billing_org, stripe_emulator, webhooks
):
    response = owner_browser.post(
        f"/billing/{billing_org.id}/checkout",
        {"plan": "business", "interval": "year", "return_to": "dashboard"},
    )
    assert response.status_code == 302 and response["Location"].startswith(stripe_emulator.base_url)
    outcome = stripe_emulator.checkout_submit(response["Location"].rsplit("/", 1)[-1], "success")
    assert outcome["redirect"] == f"http://testserver/billing/{billing_org.id}/?checkout=success"
    webhooks.deliver()
    html = dashboard(owner_browser, billing_org)
    assert (
        'id="plan-name">Business<' in html and 'id="subscription-status" class="badge ok">trialing<' in html
    )
    assert "open-portal" in html and "Visa ···· 4242" in html and 'id="trial-end"' in html
    portal = owner_browser.post(f"/billing/{billing_org.id}/portal", {"return_to": "payment-methods"})
    assert portal.status_code == 302
    session = stripe_emulator.objects("portal_session")[-1]
    assert session["return_url"] == f"http://testserver/billing/{billing_org.id}/payment-methods/"


def test_checkout_return_goes_only_to_known_pages(owner_browser, billing_org, stripe_emulator):
    owner_browser.post(
        f"/billing/{billing_org.id}/checkout",
        {"plan": "starter", "interval": "month", "return_to": "https://evil.example/"},
    )
    session = stripe_emulator.objects("checkout_session")[-1]
    assert session["success_url"] == f"http://testserver/billing/{billing_org.id}/?checkout=success"
    assert session["cancel_url"] == f"http://testserver/billing/{billing_org.id}/?checkout=canceled"


def test_checkout_canceled_returns_to_the_plans_it_was_started_from(
    owner_browser, billing_org, stripe_emulator
):
    owner_browser.post(
        f"/billing/{billing_org.id}/checkout",
        {"plan": "starter", "interval": "month", "return_to": "dashboard", "came_from": "upgrade"},
    )
    session = stripe_emulator.objects("checkout_session")[-1]
    assert session["success_url"] == f"http://testserver/billing/{billing_org.id}/?checkout=success"
    assert session["cancel_url"] == f"http://testserver/billing/{billing_org.id}/upgrade/?checkout=canceled"
    back = owner_browser.get(f"/billing/{billing_org.id}/upgrade/?checkout=canceled")
    assert "Checkout was canceled; nothing was charged." in html_of(back)


def test_unknown_plan_shows_an_error_on_the_page(owner_browser, billing_org):
    response = owner_browser.post(f"/billing/{billing_org.id}/checkout", {"plan": "gold"}, follow=True)
    assert "Unknown plan" in html_of(response)


@pytest.fixture
def subscribed(billing_org, stripe_emulator):
    """Starter monthly, paid (no trial left), ten days into the period."""
    billing_org.trial_used_at = billing_org.created_at
    billing_org.save(update_fields=["trial_used_at"])
    subscription_create(
        organization=billing_org, plan="starter", interval="month", payment_method="pm_card_visa"
    )
    stripe_emulator.advance(days=10)
    stripe_emulator.clock.freeze()
    return billing_org


def test_plan_change_shows_stripes_proration_and_charges_exactly_it(
    owner_browser, subscribed, stripe_emulator
):
    org = subscribed
    html = html_of(owner_browser.get(f"/billing/{org.id}/upgrade/"))
    assert re.search(r'data-plan-card="starter".*?data-current-plan', html, re.S)
    link = f"/billing/{org.id}/upgrade/preview?plan=professional&amp;interval=month"
    assert link in html
    preview = html_of(owner_browser.get(link.replace("&amp;", "&")))
    shown = re.search(r'id="proration-amount">\$([\d.,]+)<', preview).group(1)
    stamp = re.search(r'name="proration_date" value="(\d+)"', preview).group(1)
    assert "Confirm: switch to Professional" in preview and preview.count("data-proration") == 2
    # htmx asks for the fragment only
    fragment = html_of(
        owner_browser.get(link.replace("&amp;", "&"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="change-preview")
    )
    assert "<html" not in fragment and 'id="proration-amount"' in fragment

    done = owner_browser.post(
        f"/billing/{org.id}/upgrade/confirm",
        {"plan": "professional", "interval": "month", "proration_date": stamp},
        follow=True,
    )
    assert "Your plan is now Professional" in html_of(done)
    pending = stripe.InvoiceItem.list(api_key="sk_test_" + "x" * 24, customer=customer_id(org), pending=True)
    charged = sum(item.amount for item in pending.data)
    assert f"{charged / 100:,.2f}" == shown
    org.refresh_from_db()
    assert subscription_summary_get(organization=org).plan.code == "professional"


def test_preview_of_the_current_plan_is_an_error_on_the_page(owner_browser, subscribed):
    html = html_of(owner_browser.get(f"/billing/{subscribed.id}/upgrade/preview?plan=starter&interval=month"))
    assert "This is the current plan" in html and "confirm-change" not in html


def test_cancel_at_period_end_alert_and_resume(owner_browser, subscribed):
    org = subscribed
    owner_browser.post(f"/billing/{org.id}/subscription/cancel")
    html = dashboard(owner_browser, org)
    assert 'data-alert="canceling"' in html and "ends on" in html and 'data-action="canceling"' in html
    owner_browser.post(f"/billing/{org.id}/subscription/resume")
    assert 'data-alert="canceling"' not in dashboard(owner_browser, org)
    assert not subscription_summary_get(organization=org).cancel_at_period_end


def test_past_due_alert_links_to_the_hosted_invoice(owner_browser, subscribed, stripe_emulator, webhooks):
    org = subscribed
    stripe_emulator.faults.add(decline="insufficient_funds", times=1)
    period_end = stripe_emulator.objects("subscription")[0]["items"]["data"][0]["current_period_end"]
    stripe_emulator.advance(to=period_end + 7200)  # past the renewal, before the first retry
    webhooks.deliver()
    org.refresh_from_db()
    summary = subscription_summary_get(organization=org)
    assert summary.status == "past_due" and summary.pay_url
    html = dashboard(owner_browser, org)
    assert 'data-alert="payment"' in html and f'href="{summary.pay_url}" data-action="payment"' in html


def test_switcher_keeps_the_page_and_refuses_foreign_organizations(
    client, billing_org, billing_owner, catalogue
):
    other = organization_create(name="Second", billing_email="s@s.test", owner=billing_owner)
    client.force_login(billing_owner)
    html = html_of(client.get(f"/billing/{billing_org.id}/payment-methods/"))
    assert 'id="switch-organization"' in html and "Second" in html
    response = client.get("/billing/switch", {"org": other.id, "page": "payment-methods"})
    assert response["Location"] == f"/billing/{other.id}/payment-methods/"
    assert client.get("/billing/switch", {"org": OrganizationFactory().id}).status_code == 404
    assert client.get("/billing/switch", {"org": "not-a-uuid"}).status_code == 404


# --------------------------------------------------------------------------- payment methods
def test_add_a_card_through_checkout_setup_mode_then_default_and_remove(
    owner_browser, billing_org, stripe_emulator
):
    org = billing_org
    response = owner_browser.post(f"/billing/{org.id}/payment-methods/add")
    assert response.status_code == 302
    session = stripe_emulator.objects("checkout_session")[-1]
    assert session["mode"] == "setup" and session["customer"] == customer_id(org)
    assert session["success_url"].endswith(
        f"/billing/{org.id}/payment-methods/?setup_session={{CHECKOUT_SESSION_ID}}"
    )
    outcome = stripe_emulator.checkout_submit(session["id"], "pm_card_mastercard")
    back = outcome["redirect"].replace("http://testserver", "")
    assert back.endswith(f"setup_session={session['id']}")
    html = html_of(owner_browser.get(back, follow=True))
    assert "The card was saved." in html and "Mastercard ···· 4444" in html
    assert "data-default" in html  # the first card becomes the default

    owner_browser.post(f"/billing/{org.id}/payment-methods/add")
    second = stripe_emulator.objects("checkout_session")[-1]
    stripe_emulator.checkout_submit(second["id"], "pm_card_visa")
    owner_browser.get(f"/billing/{org.id}/payment-methods/?setup_session={second['id']}")
    visa = PaymentMethod.objects.get(customer__subscriber=org, stripe_data__card__last4="4242")
    owner_browser.post(f"/billing/{org.id}/payment-methods/{visa.id}/default")
    html = html_of(owner_browser.get(f"/billing/{org.id}/payment-methods/"))
    assert re.search(rf'data-card="{visa.id}" data-default', html)
    master = PaymentMethod.objects.get(customer__subscriber=org, stripe_data__card__last4="4444")
    done = owner_browser.post(f"/billing/{org.id}/payment-methods/{master.id}/remove", follow=True)
    assert "The card was removed." in html_of(done) and "4444" not in html_of(done)


def test_setup_session_of_another_customer_is_refused(owner_browser, billing_org, stripe_emulator, catalogue):
    other = organization_create(name="Other", billing_email="o@o.test", owner=UserFactory())
    session = stripe.checkout.Session.create(
        api_key="sk_test_" + "x" * 24,
        mode="setup",
        currency="usd",
        customer=customer_id(other),
        success_url="https://example.test/",
    )
    stripe_emulator.checkout_submit(session.id, "success")
    html = html_of(
        owner_browser.get(
            f"/billing/{billing_org.id}/payment-methods/?setup_session={session.id}", follow=True
        )
    )
    assert "Checkout session not found." in html and "4242" not in html


def test_last_card_of_a_paying_subscription_is_not_offered_for_removal(owner_browser, subscribed):
    org = subscribed
    html = html_of(owner_browser.get(f"/billing/{org.id}/payment-methods/"))
    assert "data-remove=" not in html and "add another card before removing it" in html
    card = PaymentMethod.objects.get(customer__subscriber=org)
    forced = owner_browser.post(f"/billing/{org.id}/payment-methods/{card.id}/remove", follow=True)
    assert "This is the last card of a subscription" in html_of(forced)
    assert PaymentMethod.objects.filter(id=card.id, customer__isnull=False).exists()


# --------------------------------------------------------------------------- who sees what
def test_member_sees_no_action_and_is_refused_when_forcing(client, subscribed):
    org = subscribed
    member = UserFactory()
    Membership.objects.create(user=member, organization=org, role=Role.MEMBER)
    client.force_login(member)
    for path in ("", "upgrade/", "payment-methods/", "credits/"):
        html = html_of(client.get(f"/billing/{org.id}/{path}"))
        forms = re.findall(r'<form method="post" action="([^"]+)"', html)
        assert [f for f in forms if f != reverse("logout")] == [], (path, forms)
    card = PaymentMethod.objects.get(customer__subscriber=org)
    for path, data in [
        ("checkout", {"plan": "business"}),
        ("portal", {}),
        ("upgrade/confirm", {"plan": "business", "interval": "month"}),
        ("subscription/cancel", {}),
        ("payment-methods/add", {}),
        (f"payment-methods/{card.id}/remove", {}),
        ("credits/buy", {"pack": "starter", "idempotency_key": "k"}),
        ("credits/auto-refill", {"refill-enabled": "on"}),
    ]:
        assert client.post(f"/billing/{org.id}/{path}", data).status_code == 403, path
    assert subscription_summary_get(organization=org).plan.code == "starter"
    assert PaymentMethod.objects.filter(id=card.id, customer__isnull=False).exists()


def test_strangers_get_404_staff_reach_every_organization(client, billing_org):
    client.force_login(UserFactory())
    assert client.get(f"/billing/{billing_org.id}/").status_code == 404
    assert client.post(f"/billing/{billing_org.id}/portal").status_code == 404
    client.force_login(UserFactory(is_staff=True))
    html = dashboard(client, billing_org)
    assert "(staff view)" in html and "Change plan" in html
    client.logout()
    assert client.get(f"/billing/{billing_org.id}/").status_code == 302  # to the login page


def test_locale_formats_money_and_credits():
    from django.utils import translation

    from billing.templatetags.money import credits, money, percent

    assert money(2950, "usd") == "$29.50"
    assert money(1, "eur") == "€0.01"
    assert money(500, "jpy") == "¥500"
    assert credits("1500.0000") == "1,500" and credits("12.5000") == "12.5" and credits("0.0001") == "0.0001"
    assert percent("0.425") == "42%"
    with translation.override("de"):
        assert money(299000, "usd") == "2.990,00\xa0$"
        assert credits("1500.25") == "1.500,25"

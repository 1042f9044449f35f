"""The tenant's billing page: plan, cards, and the way to Stripe's Checkout and Portal."""

import pytest

from billing.models import Membership, Role
from tests.billing.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_browser(client, billing_org, billing_owner):
    client.force_login(billing_owner)
    return client


def page(client, org):
    return client.get(f"/billing/{org.id}/")


def test_free_organization_sees_the_plans(owner_browser, billing_org):
    response = page(owner_browser, billing_org)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="plan-name">Free<' in html
    assert 'data-plan="business" data-interval="year"' in html
    assert "2990.00 USD/year" in html
    assert "open-portal" not in html


def test_checkout_from_the_page_subscribes(owner_browser, billing_org, stripe_emulator, webhooks):
    response = owner_browser.post(
        f"/billing/{billing_org.id}/checkout", {"plan": "business", "interval": "year"}
    )
    assert response.status_code == 302 and response["Location"].startswith(stripe_emulator.base_url)
    session_id = response["Location"].rsplit("/", 1)[-1]
    outcome = stripe_emulator.checkout_submit(session_id, "success")
    assert outcome["redirect"].startswith(f"http://testserver/billing/{billing_org.id}/?checkout=success")
    webhooks.deliver()
    html = page(owner_browser, billing_org).content.decode()
    assert 'id="plan-name">Business<' in html and 'id="subscription-status">trialing<' in html
    assert "open-portal" in html and "Visa ···· 4242" in html
    portal = owner_browser.post(f"/billing/{billing_org.id}/portal")
    assert portal.status_code == 302 and portal["Location"].startswith(stripe_emulator.base_url)


def test_unknown_plan_shows_an_error_on_the_page(owner_browser, billing_org):
    response = owner_browser.post(f"/billing/{billing_org.id}/checkout", {"plan": "gold"}, follow=True)
    assert response.status_code == 200 and "Unknown plan" in response.content.decode()


def test_other_tenants_and_lower_roles(client, billing_org):
    stranger = UserFactory()
    client.force_login(stranger)
    assert page(client, billing_org).status_code == 404
    assert client.post(f"/billing/{billing_org.id}/portal").status_code == 404
    Membership.objects.create(user=stranger, organization=billing_org, role=Role.MEMBER)
    assert page(client, billing_org).status_code == 200
    assert "data-plan=" not in page(client, billing_org).content.decode()
    assert client.post(f"/billing/{billing_org.id}/checkout", {"plan": "starter"}).status_code == 403
    client.logout()
    assert page(client, OrganizationFactory()).status_code == 302  # to the login page


def test_money_filter_is_exact():
    from billing.templatetags.money import money

    assert money(2950, "usd") == "29.50 USD"
    assert money(1, "eur") == "0.01 EUR"
    assert money(500, "jpy") == "500 JPY"

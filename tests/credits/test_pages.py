"""The credits page: balance by source and expiries, buying a pack off-session (once per form) or
on Checkout, auto-refill and low-balance settings with their errors, the ledger with filters and
its CSV export; the dashboard's credits panel and low-balance alert."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services import payment_method_attach
from credits.models import CreditPurchase
from credits.selectors import credit_summary_get
from credits.services import credit_account_settings_update, credit_consume, credit_grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_browser(client, billing_org, billing_owner):
    client.force_login(billing_owner)
    return client


def page(client, org, query="") -> str:
    response = client.get(f"/billing/{org.id}/credits/{query}")
    assert response.status_code == 200, response.content[:300]
    return response.content.decode()


@pytest.fixture
def ledger(billing_org):
    credit_grant(
        organization=billing_org,
        amount="500",
        reason='=HYPERLINK("http://x")',
        idempotency_key="g1",
        source="promo",
    )
    credit_grant(
        organization=billing_org,
        amount="1000",
        reason="Plan credits",
        idempotency_key="g2",
        source="subscription",
        expires_at=timezone.now() + timedelta(days=20),
    )
    credit_consume(organization=billing_org, amount="120.5", reason="SMS batch", idempotency_key="c1")
    return billing_org


def test_balance_by_source_and_next_expiry(owner_browser, ledger):
    html = page(owner_browser, ledger)
    assert 'id="credit-balance">1,379.5<' in html
    # Plan credits are spent before promo ones (the consumption order).
    assert 'data-source="subscription">879.5<' in html and 'data-source="promo">500<' in html
    assert 'id="next-expiry">879.5 on ' in html


def test_buy_a_pack_with_the_saved_card_once_per_form(owner_browser, billing_org):
    payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa")
    html = page(owner_browser, billing_org)
    key = re.search(r'name="idempotency_key" value="([^"]+-starter)"', html)
    pack = "starter"
    if key is None:  # the first pack of the catalogue, whatever its code
        pack = re.search(r'data-buy="([^"]+)"', html).group(1)
        key = re.search(rf'name="idempotency_key" value="([^"]+-{pack})"', html)
    data = {"pack": pack, "idempotency_key": key.group(1)}
    done = owner_browser.post(f"/billing/{billing_org.id}/credits/buy", data, follow=True)
    text = done.content.decode()
    assert "credits were added" in text
    balance = credit_summary_get(organization=billing_org).balance
    assert balance > 0 and f'id="credit-balance">{balance:,.0f}<' in text.replace(".0000", "")
    owner_browser.post(f"/billing/{billing_org.id}/credits/buy", data)  # sent again: the same purchase
    assert CreditPurchase.objects.filter(organization=billing_org).count() == 1
    assert credit_summary_get(organization=billing_org).balance == balance


def test_declined_purchase_shows_the_reason_and_adds_nothing(owner_browser, billing_org, stripe_emulator):
    payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa")
    stripe_emulator.faults.add(decline="insufficient_funds", times=1)
    pack = re.search(r'data-buy="([^"]+)"', page(owner_browser, billing_org)).group(1)
    done = owner_browser.post(
        f"/billing/{billing_org.id}/credits/buy", {"pack": pack, "idempotency_key": "x1"}, follow=True
    )
    assert "The purchase did not go through" in done.content.decode()
    assert credit_summary_get(organization=billing_org).balance == 0


def test_without_a_card_packs_are_sold_on_checkout(owner_browser, billing_org, stripe_emulator, webhooks):
    html = page(owner_browser, billing_org)
    assert "data-buy=" not in html and "Buy on Stripe Checkout" in html
    pack = re.search(r'data-buy-checkout="([^"]+)"', html).group(1)
    response = owner_browser.post(f"/billing/{billing_org.id}/credits/buy/checkout", {"pack": pack})
    session_id = response["Location"].rsplit("/", 1)[-1]
    outcome = stripe_emulator.checkout_submit(session_id, "success")
    assert outcome["redirect"] == f"http://testserver/billing/{billing_org.id}/credits/?checkout=success"
    webhooks.deliver()
    assert credit_summary_get(organization=billing_org).balance > 0


def test_auto_refill_and_low_balance_settings_with_errors(owner_browser, billing_org):
    url = f"/billing/{billing_org.id}/credits/auto-refill"
    pack = re.search(r'<option value="([^"]+)"', page(owner_browser, billing_org)).group(1)
    bad = owner_browser.post(
        url,
        {
            "refill-enabled": "on",
            "refill-threshold": "-5",
            "refill-pack": pack,
            "refill-max_refills_per_day": "3",
        },
    )
    assert bad.status_code == 400 and "greater than or equal to 0" in bad.content.decode()
    no_card = owner_browser.post(
        url,
        {
            "refill-enabled": "on",
            "refill-threshold": "100",
            "refill-pack": pack,
            "refill-max_refills_per_day": "3",
        },
    )
    assert no_card.status_code == 400 and "A saved card" in no_card.content.decode()
    payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa")
    ok = owner_browser.post(
        url,
        {
            "refill-enabled": "on",
            "refill-threshold": "100",
            "refill-pack": pack,
            "refill-max_refills_per_day": "2",
        },
        follow=True,
    )
    assert "Auto-refill is on." in ok.content.decode()
    refill = credit_summary_get(organization=billing_org).auto_refill
    assert refill.enabled and refill.threshold == Decimal("100") and refill.max_refills_per_day == 2

    low = f"/billing/{billing_org.id}/credits/low-balance"
    assert owner_browser.post(low, {"low-threshold": "abc"}).status_code == 400
    owner_browser.post(low, {"low-threshold": "50"})
    assert credit_summary_get(organization=billing_org).low_balance_threshold == Decimal("50")
    owner_browser.post(low, {"low-threshold": ""})
    assert credit_summary_get(organization=billing_org).low_balance_threshold is None


def test_transactions_filters_paging_and_csv(owner_browser, ledger):
    org = ledger
    html = page(owner_browser, org, "?kind=consume")
    assert html.count('data-kind="consume"') == 1 and 'data-kind="grant"' not in html
    assert f'href="/billing/{org.id}/credits/transactions.csv?kind=consume"' in html
    today = timezone.localdate()
    empty = page(owner_browser, org, f"?start={today + timedelta(days=1)}")
    assert "No transactions match these filters" in empty
    wrong = page(owner_browser, org, f"?start={today}&end={today - timedelta(days=1)}")
    assert "The end date must not be before the start date." in wrong
    fragment = owner_browser.get(
        f"/billing/{org.id}/credits/?kind=grant", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="transactions"
    ).content.decode()
    assert fragment.startswith('<div id="transactions">') or fragment.lstrip().startswith(
        '<div id="transactions">'
    )
    assert fragment.count('data-kind="grant"') == 2

    response = owner_browser.get(f"/billing/{org.id}/credits/transactions.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["kind"] for r in rows] == ["consume", "grant", "grant"]
    assert rows[0]["amount"] == "-120.5" and rows[0]["balance_after"] == "1379.5"
    assert rows[2]["reason"] == '\'=HYPERLINK("http://x")'  # a spreadsheet shows it, never runs it
    filtered = owner_browser.get(f"/billing/{org.id}/credits/transactions.csv?kind=grant")
    assert len(list(csv.DictReader(io.StringIO(b"".join(filtered.streaming_content).decode())))) == 2
    assert owner_browser.get(f"/billing/{org.id}/credits/transactions.csv?kind=nope").status_code == 400


def test_dashboard_credits_panel_and_low_balance_alert(owner_browser, ledger):
    org = ledger
    credit_account_settings_update(organization=org, low_balance_threshold=Decimal("2000"))
    html = owner_browser.get(f"/billing/{org.id}/").content.decode()
    assert 'id="panel-credits"' in html and 'id="credit-balance">1,379.5<' in html
    assert 'data-alert="low-balance"' in html and "below your alert threshold (2,000)" in html


def test_daily_credits_in_the_api_and_as_a_chart_with_its_figures(owner_browser, ledger, billing_client):
    org = ledger
    days = billing_client.get(f"/api/v1/organizations/{org.id}/credits/daily", {"days": 3}).json()
    assert [d["date"] for d in days] == [str(timezone.localdate() - timedelta(days=n)) for n in (2, 1, 0)]
    assert days[-1] == {"date": str(timezone.localdate()), "consumed": "120.5", "granted": "1500"}
    assert days[0]["consumed"] == "0"
    assert billing_client.get(f"/api/v1/organizations/{org.id}/credits/daily", {"days": 0}).status_code == 400
    html = page(owner_browser, org)
    assert '<svg class="chart"' in html and 'role="img"' in html
    assert "120.5 credits in all over 30 periods; the most, 120.5, on " in html
    assert html.count("<rect ") == 30 and "Show the figures" in html


def test_an_empty_chart_says_so(owner_browser, billing_org):
    html = page(owner_browser, billing_org)
    assert "Nothing in this period" in html and "0 credits in all over 30 periods." in html

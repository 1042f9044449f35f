import pytest

from billing.models import Plan, PlanPrice
from billing.selectors import plan_price_for_stripe_price
from billing.services import stripe_catalog_sync

pytestmark = pytest.mark.django_db


def test_sync_creates_products_and_prices_by_lookup_key(catalogue, stripe_emulator):
    prices = stripe_emulator.objects("price")
    assert len(prices) == 9  # four paid plans, monthly and yearly, and Business's metered SMS overage
    keys = {p["lookup_key"] for p in prices}
    assert keys == {
        f"plan_{code}_{i}"
        for code in ("starter", "professional", "business", "enterprise")
        for i in ("month", "year")
    } | {"plan_business_month_overage_sms_sent"}
    starter_month = PlanPrice.objects.get(plan__code="starter", interval="month")
    stripe_price = stripe_emulator.get(starter_month.stripe_price_id)
    assert stripe_price["unit_amount"] == 2900 and stripe_price["recurring"]["interval"] == "month"
    assert stripe_price["product"] == "plan_starter"
    from djstripe.models import Price, Product

    assert Product.objects.filter(id="plan_starter").exists()
    assert Price.objects.filter(id=starter_month.stripe_price_id).exists()


def test_second_sync_changes_nothing(catalogue, stripe_emulator):
    before = len(stripe_emulator.objects("price")), len(stripe_emulator.objects("product"))
    result = stripe_catalog_sync()
    assert (result.prices_created, result.products_created, result.prices_updated) == (0, 0, 0)
    assert result.unchanged == 8
    assert (len(stripe_emulator.objects("price")), len(stripe_emulator.objects("product"))) == before


def test_changed_amount_makes_a_new_price_and_old_prices_still_map_back(catalogue, stripe_emulator):
    price = PlanPrice.objects.get(plan__code="starter", interval="month")
    old_id = price.stripe_price_id
    PlanPrice.objects.filter(pk=price.pk).update(amount=3900)
    result = stripe_catalog_sync()
    assert result.prices_created == 1
    price.refresh_from_db()
    assert price.stripe_price_id != old_id
    assert stripe_emulator.get(price.stripe_price_id)["lookup_key"] == "plan_starter_month"
    assert stripe_emulator.get(old_id)["lookup_key"] is None
    PlanPrice.objects.filter(pk=price.pk).update(stripe_price_id=price.stripe_price_id)
    mapped = plan_price_for_stripe_price(price_id=old_id)
    assert (mapped.plan.code, mapped.interval) == ("starter", "month")


def test_deactivated_plan_archives_its_prices(catalogue, stripe_emulator):
    Plan.objects.filter(code="business").update(active=False)
    stripe_catalog_sync()
    for price in PlanPrice.objects.filter(plan__code="business"):
        assert stripe_emulator.get(price.stripe_price_id)["active"] is False
    products = {p["id"]: p for p in stripe_emulator.objects("product")}
    assert products["plan_business"]["active"] is False and products["plan_starter"]["active"] is True


def test_plans_api_is_public_and_has_the_contract_shape(catalogue, api_client):
    body = api_client.get("/api/v1/plans").json()
    codes = [p["code"] for p in body]
    assert codes == ["free", "starter", "professional", "business", "enterprise"]
    starter = body[1]
    assert set(starter) >= {
        "code",
        "name",
        "description",
        "trial_days",
        "included_credits",
        "limits",
        "features",
        "prices",
    }
    assert starter["included_credits"] == "1000"
    assert {p["interval"]: p["amount"] for p in starter["prices"]} == {"month": 2900, "year": 29000}
    assert all(p["currency"] == "usd" and p["id"].startswith("price_") for p in starter["prices"])
    assert body[0]["prices"] == []
    assert body[4]["limits"] == {}

"""Products and prices: lookup keys, list filters, archiving."""

from __future__ import annotations

import pytest
import stripe

from .conftest import KEY


def test_products_crud_and_custom_ids(emu, client):
    prod = stripe.Product.create(api_key=KEY, name="Starter", id="starter", metadata={"plan": "starter"})
    assert prod.id == "starter" and prod.active is True
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Product.create(api_key=KEY, name="Again", id="starter")
    assert caught.value.code == "resource_already_exists"
    updated = client.v1.products.update("starter", {"description": "For small teams", "active": False})
    assert (updated.description, updated.active) == ("For small teams", False)
    assert [p.id for p in stripe.Product.list(api_key=KEY, active=False).data] == ["starter"]
    assert stripe.Product.list(api_key=KEY, active=True).data == []
    assert stripe.Product.delete("starter", api_key=KEY).deleted is True
    assert emu.event_types() == ["product.created", "product.updated", "product.deleted"]


def test_product_with_prices_cannot_be_deleted(emu, monthly_price):
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Product.delete(monthly_price.product, api_key=KEY)


def test_recurring_and_one_time_prices(emu, monthly_price):
    assert monthly_price.type == "recurring"
    assert monthly_price.recurring.interval == "month" and monthly_price.recurring.interval_count == 1
    assert monthly_price.unit_amount == 3000 and str(monthly_price.unit_amount_decimal) == "3000"
    pack = stripe.Price.create(
        api_key=KEY, currency="usd", unit_amount=1999, product_data={"name": "1000 credits"}
    )
    assert pack.type == "one_time" and pack.recurring is None
    assert stripe.Product.retrieve(pack.product, api_key=KEY).name == "1000 credits"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Price.create(api_key=KEY, currency="usd", product=pack.product)
    assert caught.value.param == "unit_amount"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Price.create(api_key=KEY, currency="usd", unit_amount=5, product="prod_nope")
    assert caught.value.param == "product"


def test_lookup_keys_are_unique_unless_transferred(emu, monthly_price, client):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Price.create(
            api_key=KEY,
            product=monthly_price.product,
            currency="usd",
            unit_amount=3500,
            recurring={"interval": "month"},
            lookup_key="pro_monthly",
        )
    assert caught.value.param == "lookup_key"
    newer = client.v1.prices.create(
        {
            "product": monthly_price.product,
            "currency": "usd",
            "unit_amount": 3500,
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
            "transfer_lookup_key": True,
        }
    )
    found = stripe.Price.list(api_key=KEY, lookup_keys=["pro_monthly"]).data
    assert [p.id for p in found] == [newer.id]
    assert stripe.Price.retrieve(monthly_price.id, api_key=KEY).lookup_key is None


def test_price_list_filters(emu, monthly_price, yearly_price):
    one_time = stripe.Price.create(
        api_key=KEY, product=monthly_price.product, currency="eur", unit_amount=500
    )
    archived = stripe.Price.modify(one_time.id, api_key=KEY, active=False)
    assert archived.active is False
    ids = lambda **kw: [p.id for p in stripe.Price.list(api_key=KEY, **kw).data]  # noqa: E731
    assert ids(type="recurring") == [yearly_price.id, monthly_price.id]
    assert ids(recurring={"interval": "year"}) == [yearly_price.id]
    assert ids(currency="eur") == [one_time.id]
    assert ids(active=True) == [yearly_price.id, monthly_price.id]
    assert ids(product=monthly_price.product, limit=1) == [one_time.id]
    assert ids(lookup_keys=["pro_monthly", "pro_yearly"]) == [yearly_price.id, monthly_price.id]


def test_get_finds_objects_with_custom_ids_and_features_answer(emu):
    stripe.Product.create(api_key=KEY, name="Starter", id="plan_starter")
    price = stripe.Price.create(api_key=KEY, product="plan_starter", currency="usd", unit_amount=900)
    assert emu.get("plan_starter")["name"] == "Starter"  # "plan_" names no emulated type
    assert emu.get(price.id)["product"] == "plan_starter"
    assert emu.get("plan_missing") is None
    features = stripe.Product.list_features("plan_starter", api_key=KEY)  # dj-stripe's sync asks
    assert features.data == [] and features.url == "/v1/products/plan_starter/features"
    expanded = stripe.Price.retrieve(price.id, api_key=KEY, expand=["product"])
    assert expanded.product.id == "plan_starter"

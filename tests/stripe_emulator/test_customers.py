"""Customers and payment methods through stripe-python."""

from __future__ import annotations

import pytest
import stripe

from .conftest import KEY


def test_customer_create_retrieve_update_list_delete(emu, client):
    created = stripe.Customer.create(api_key=KEY, email="a@example.com", name="Ann", metadata={"org": "1"})
    assert created.balance == 0 and created.livemode is False
    updated = stripe.Customer.modify(
        created.id, api_key=KEY, name="Ann B", metadata={"org": "", "tier": "pro"}
    )
    assert updated.name == "Ann B" and updated.metadata.to_dict() == {"tier": "pro"}
    assert client.v1.customers.retrieve(created.id).name == "Ann B"
    other = client.v1.customers.create({"email": "b@example.com"})
    assert [c.id for c in stripe.Customer.list(api_key=KEY, email="b@example.com").data] == [other.id]
    deleted = stripe.Customer.delete(created.id, api_key=KEY)
    assert deleted.deleted is True
    assert stripe.Customer.retrieve(created.id, api_key=KEY).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Customer.modify(created.id, api_key=KEY, name="ghost")
    assert emu.event_types()[-1] == "customer.deleted"
    updated_event = emu.events("customer.updated")[0]
    assert updated_event["data"]["previous_attributes"]["name"] == "Ann"


def test_default_payment_method_must_belong_to_the_customer(emu, customer):
    assert customer.invoice_settings.default_payment_method.startswith("pm_")
    stranger = stripe.PaymentMethod.create(api_key=KEY, type="card", card={"token": "tok_mastercard"})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Customer.modify(
            customer.id, api_key=KEY, invoice_settings={"default_payment_method": stranger.id}
        )
    assert caught.value.param == "invoice_settings[default_payment_method]"
    stripe.PaymentMethod.attach(stranger.id, api_key=KEY, customer=customer.id)
    updated = stripe.Customer.modify(
        customer.id, api_key=KEY, invoice_settings={"default_payment_method": stranger.id}
    )
    assert updated.invoice_settings.default_payment_method == stranger.id


def test_deleting_a_customer_cancels_its_subscriptions(emu, customer, monthly_price):
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    stripe.Customer.delete(customer.id, api_key=KEY)
    assert emu.get(sub.id)["status"] == "canceled"
    assert "customer.subscription.deleted" in emu.event_types()


@pytest.mark.parametrize(
    ("test_id", "brand", "last4"),
    [
        ("pm_card_visa", "visa", "4242"),
        ("pm_card_mastercard", "mastercard", "4444"),
        ("pm_card_chargeCustomerFail", "visa", "0341"),
        ("pm_card_authenticationRequired", "visa", "3184"),
    ],
)
def test_test_ids_attach_as_new_payment_methods(emu, test_id, brand, last4):
    cust = stripe.Customer.create(api_key=KEY)
    pm = stripe.PaymentMethod.attach(test_id, api_key=KEY, customer=cust.id)
    assert pm.id.startswith("pm_") and pm.id != test_id
    assert (pm.card.brand, pm.card.last4, pm.customer) == (brand, last4, cust.id)
    assert emu.event_types()[-1] == "payment_method.attached"


@pytest.mark.parametrize(
    ("test_id", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
def test_declining_cards_cannot_be_attached(emu, test_id, decline_code):
    cust = stripe.Customer.create(api_key=KEY)
    with pytest.raises(stripe.CardError) as caught:
        stripe.PaymentMethod.attach(test_id, api_key=KEY, customer=cust.id)
    assert (caught.value.code, caught.value.error.decline_code) == ("card_declined", decline_code)
    assert caught.value.http_status == 402


def test_detach_clears_the_default_and_lists_follow(emu, customer, client):
    pm_id = customer.invoice_settings.default_payment_method
    second = stripe.PaymentMethod.attach("pm_card_mastercard", api_key=KEY, customer=customer.id)
    listed = stripe.PaymentMethod.list(api_key=KEY, customer=customer.id, type="card")
    assert [p.id for p in listed.data] == [second.id, pm_id]
    assert [p.id for p in stripe.Customer.list_payment_methods(customer.id, api_key=KEY).data] == [
        second.id,
        pm_id,
    ]
    assert client.v1.customers.payment_methods.retrieve(customer.id, pm_id).id == pm_id
    detached = stripe.PaymentMethod.detach(pm_id, api_key=KEY)
    assert detached.customer is None
    assert stripe.Customer.retrieve(customer.id, api_key=KEY).invoice_settings.default_payment_method is None
    assert [p.id for p in client.v1.payment_methods.list({"customer": customer.id}).data] == [second.id]
    assert emu.events("payment_method.detached")[0]["data"]["previous_attributes"] == {
        "customer": customer.id
    }
    with pytest.raises(stripe.InvalidRequestError):
        stripe.PaymentMethod.detach(pm_id, api_key=KEY)


def test_payment_method_from_card_number_and_update(emu):
    pm = stripe.PaymentMethod.create(
        api_key=KEY,
        type="card",
        card={"number": "4000000000000002", "exp_month": 4, "exp_year": 2031, "cvc": "123"},
        billing_details={"name": "Jenny Rosen"},
    )
    assert (pm.card.last4, pm.card.exp_month, pm.billing_details.name) == ("0002", 4, "Jenny Rosen")
    with pytest.raises(stripe.CardError) as caught:
        stripe.PaymentMethod.create(api_key=KEY, type="card", card={"number": "4242424242424241"})
    assert caught.value.code == "incorrect_number"
    updated = stripe.PaymentMethod.modify(pm.id, api_key=KEY, metadata={"k": "v"}, card={"exp_year": 2033})
    assert updated.card.exp_year == 2033 and updated.metadata.k == "v"


NOT_REUSABLE = (
    "This PaymentMethod was previously used without being attached to a Customer or was detached from a "
    "Customer, and may not be used again."
)


def test_a_detached_payment_method_cannot_be_attached_or_used_again(emu, customer):
    pm_id = customer.invoice_settings.default_payment_method
    stripe.PaymentMethod.detach(pm_id, api_key=KEY)
    other = stripe.Customer.create(api_key=KEY, email="other@example.com")
    for who in (customer.id, other.id):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            stripe.PaymentMethod.attach(pm_id, api_key=KEY, customer=who)
        assert caught.value.http_status == 400 and caught.value.user_message == NOT_REUSABLE
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Customer.create(api_key=KEY, payment_method=pm_id)
    assert caught.value.user_message == NOT_REUSABLE
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.create(
            api_key=KEY, amount=1000, currency="usd", customer=other.id, payment_method=pm_id, confirm=True
        )
    assert caught.value.user_message == NOT_REUSABLE
    assert stripe.PaymentMethod.retrieve(pm_id, api_key=KEY).customer is None
    assert emu.objects("charge") == []
    assert len(emu.objects("customer")) == 2  # the refused Customer.create left nothing behind


def test_a_payment_method_of_another_customer_cannot_be_attached(emu, customer):
    other = stripe.Customer.create(api_key=KEY, email="other@example.com")
    pm_id = customer.invoice_settings.default_payment_method
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentMethod.attach(pm_id, api_key=KEY, customer=other.id)
    assert caught.value.http_status == 400
    assert (
        caught.value.user_message
        == "The payment method you provided has already been attached to a customer."
    )
    assert stripe.PaymentMethod.retrieve(pm_id, api_key=KEY).customer == customer.id


def test_a_payment_method_used_without_a_customer_cannot_be_attached_later(emu):
    pm = stripe.PaymentMethod.create(api_key=KEY, type="card", card={"token": "tok_visa"})
    paid = stripe.PaymentIntent.create(
        api_key=KEY, amount=1000, currency="usd", payment_method=pm.id, confirm=True
    )
    assert paid.status == "succeeded"
    cust = stripe.Customer.create(api_key=KEY)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentMethod.attach(pm.id, api_key=KEY, customer=cust.id)
    assert caught.value.user_message == NOT_REUSABLE
    with pytest.raises(stripe.InvalidRequestError):
        stripe.PaymentIntent.create(
            api_key=KEY, amount=500, currency="usd", payment_method=pm.id, confirm=True
        )
    assert len(emu.objects("charge")) == 1

"""Refunds and disputes: the test helper that opens a dispute, Stripe's dispute test cards,
evidence, closing, and the events (`charge.refunded`, `charge.dispute.created/closed`)."""

from __future__ import annotations

import json

import pytest
import stripe

from .conftest import KEY


@pytest.fixture
def charge(emu, customer) -> stripe.Charge:
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=4200,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        confirm=True,
    )
    return stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)


def test_refund_fires_charge_refunded(emu, charge):
    stripe.Refund.create(api_key=KEY, charge=charge.id, amount=1000)
    refunded = emu.events("charge.refunded")
    assert len(refunded) == 1
    assert refunded[0]["data"]["object"]["amount_refunded"] == 1000
    assert refunded[0]["data"]["previous_attributes"] == {"amount_refunded": 0, "refunded": False}


def test_open_a_dispute_with_the_helper_and_lose_it(emu, charge):
    dispute = emu.create_dispute(charge.id, reason="product_not_received")
    assert dispute["id"].startswith("dp_") and dispute["status"] == "needs_response"
    assert (dispute["amount"], dispute["charge"], dispute["payment_intent"]) == (
        4200,
        charge.id,
        charge.payment_intent,
    )
    fetched = stripe.Dispute.retrieve(dispute["id"], api_key=KEY)
    assert fetched.reason == "product_not_received"
    assert [t.amount for t in fetched.balance_transactions] == [-4200]
    assert fetched.balance_transactions[0].fee == 1500
    assert stripe.Charge.retrieve(charge.id, api_key=KEY).disputed is True
    types = emu.event_types()
    assert types.index("charge.dispute.created") < types.index("charge.dispute.funds_withdrawn")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Refund.create(api_key=KEY, charge=charge.id)
    assert caught.value.code == "charge_disputed"
    closed = stripe.Dispute.close(dispute["id"], api_key=KEY)
    assert closed.status == "lost"
    assert emu.events("charge.dispute.closed")[0]["data"]["object"]["status"] == "lost"
    assert [d.id for d in stripe.Dispute.list(api_key=KEY, charge=charge.id).data] == [dispute["id"]]


def test_winning_evidence_wins(emu, charge):
    dispute = emu.create_dispute(charge.id)
    won = stripe.Dispute.modify(
        dispute["id"],
        api_key=KEY,
        evidence={"uncategorized_text": "winning_evidence"},
        metadata={"case": "7"},
    )
    assert won.status == "won" and won.evidence_details.submission_count == 1
    assert [t.amount for t in won.balance_transactions] == [-4200, 4200]
    types = emu.event_types()
    assert types[-3:] == [
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]


def test_losing_evidence_loses(emu, charge):
    dispute = emu.create_dispute(charge.id)
    lost = stripe.Dispute.modify(
        dispute["id"], api_key=KEY, evidence={"uncategorized_text": "losing_evidence"}
    )
    assert lost.status == "lost" and "charge.dispute.funds_reinstated" not in emu.event_types()


def test_the_dispute_test_card_disputes_its_charge(emu, customer):
    pi = stripe.PaymentIntent.create(
        api_key=KEY, amount=900, currency="usd", payment_method="pm_card_createDispute", confirm=True
    )
    assert pi.status == "succeeded"
    disputes = stripe.Dispute.list(api_key=KEY, payment_intent=pi.id).data
    assert len(disputes) == 1 and disputes[0].reason == "fraudulent" and disputes[0].amount == 900
    inquiry_pi = stripe.PaymentIntent.create(
        api_key=KEY, amount=900, currency="usd", payment_method="pm_card_createDisputeInquiry", confirm=True
    )
    inquiry = stripe.Dispute.list(api_key=KEY, payment_intent=inquiry_pi.id).data[0]
    assert inquiry.status == "warning_needs_response" and inquiry.balance_transactions == []


def test_dispute_admin_path(emu, charge):
    status, _, body = emu.handle(
        "POST",
        f"/_emulator/charges/{charge.id}/dispute",
        {"Content-Type": "application/json"},
        json.dumps({"reason": "duplicate", "amount": 1000}),
    )
    assert status == 200
    dispute = json.loads(body)
    assert (dispute["reason"], dispute["amount"]) == ("duplicate", 1000)
    status, _, body = emu.handle("POST", f"/_emulator/disputes/{dispute['id']}/close", None, "outcome=won")
    assert status == 200 and json.loads(body)["status"] == "won"
    status, _, _ = emu.handle("POST", f"/_emulator/charges/{charge.id}/dispute", None, "")
    assert status == 400  # already disputed

"""Fresh objects in Stripe's current shapes (API version 2026-08-26.dahlia).

Each builder returns every top-level key that Stripe's own example object (fixtures3.json)
carries, with the values a new test-mode object has. The rules that change them live in
`payments.py`, `invoicing.py`, `subscriptions.py` and the other rule modules.
"""

from __future__ import annotations

from typing import Any


def empty_address() -> dict[str, Any]:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def address_from(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    address = empty_address()
    address.update({k: v for k, v in params.items() if k in address})
    return address


def list_object(url: str, data: list[Any] | None = None) -> dict[str, Any]:
    return {"object": "list", "data": data or [], "has_more": False, "url": url}


def account(account_id: str, now: int) -> dict[str, Any]:
    return {
        "id": account_id,
        "object": "account",
        "business_profile": {
            "annual_revenue": None,
            "estimated_worker_count": None,
            "mcc": None,
            "minority_owned_business_designation": None,
            "name": "Stripe emulator",
            "product_description": None,
            "support_address": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": None,
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "controller": {"type": "account"},
        "country": "US",
        "created": now,
        "default_currency": "usd",
        "details_submitted": True,
        "email": "emulator@example.com",
        "external_accounts": list_object(f"/v1/accounts/{account_id}/external_accounts"),
        "future_requirements": _requirements(),
        "metadata": {},
        "payouts_enabled": True,
        "requirements": _requirements(),
        "settings": {
            "bacs_debit_payments": {"display_name": None, "service_user_number": None},
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "card_issuing": {"tos_acceptance": {"date": None, "ip": None}},
            "dashboard": {"display_name": "Stripe emulator", "timezone": "Etc/UTC"},
            "invoices": {"default_account_tax_ids": None, "hosted_payment_method_save": None},
            "payments": {
                "statement_descriptor": "STRIPE EMULATOR",
                "statement_descriptor_kana": None,
                "statement_descriptor_kanji": None,
                "statement_descriptor_prefix_kana": None,
                "statement_descriptor_prefix_kanji": None,
            },
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
            "sepa_debit_payments": {},
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": "standard",
    }


def _requirements() -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }


def customer(customer_id: str, now: int, invoice_prefix: str) -> dict[str, Any]:
    return {
        "id": customer_id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def payment_method(pm_id: str, now: int, card: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": pm_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": empty_address(),
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": card,
        "created": now,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def setup_intent(seti_id: str, now: int, secret: str) -> dict[str, Any]:
    return {
        "id": seti_id,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": f"{seti_id}_secret_{secret}",
        "created": now,
        "customer": None,
        "description": None,
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {"mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
        },
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": "off_session",
    }


def payment_intent(pi_id: str, now: int, secret: str, amount: int, currency: str) -> dict[str, Any]:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_{secret}",
        "confirmation_method": "automatic",
        "created": now,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "description": None,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(ch_id: str, now: int, pi: dict[str, Any], pm: dict[str, Any]) -> dict[str, Any]:
    if pm["type"] != "card":
        data = charge(ch_id, now, pi, {**pm, "type": "card", "card": _placeholder_card()})
        data["payment_method_details"] = {"type": pm["type"], pm["type"]: _bank_details(pm)}
        return data
    card = pm["card"]
    return {
        "id": ch_id,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": dict(pm["billing_details"]),
        "calculated_statement_descriptor": "STRIPE EMULATOR",
        "captured": False,
        "created": now,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "on_behalf_of": None,
        "outcome": None,
        "paid": False,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": pi["amount"],
                "authorization_code": None,
                "brand": card["brand"],
                "checks": dict(card["checks"]),
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": card["fingerprint"],
                "funding": card["funding"],
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": card["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card["brand"],
                "network_token": {"used": False},
                "network_transaction_id": None,
                "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
                "regulated_status": card.get("regulated_status"),
                "three_d_secure": None,
                "transaction_link_id": None,
                "wallet": None,
            },
            "type": "card",
        },
        "receipt_email": pi["receipt_email"],
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": None,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": pi["statement_descriptor"],
        "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
        "status": "pending",
        "transfer_data": None,
        "transfer_group": None,
    }


def _placeholder_card() -> dict[str, Any]:
    return {
        "brand": None,
        "checks": {},
        "country": None,
        "exp_month": None,
        "exp_year": None,
        "fingerprint": None,
        "funding": None,
        "last4": None,
    }


def _bank_details(pm: dict[str, Any]) -> dict[str, Any]:
    bank = pm["us_bank_account"]
    return {
        "account_holder_type": bank["account_holder_type"],
        "account_type": bank["account_type"],
        "bank_name": bank["bank_name"],
        "fingerprint": bank["fingerprint"],
        "last4": bank["last4"],
        "mandate": None,
        "payment_reference": None,
        "routing_number": bank["routing_number"],
    }


def bank_payment_method(pm_id: str, now: int, last4: str, fingerprint: str) -> dict[str, Any]:
    """A `us_bank_account` PaymentMethod: a debit that settles some time after it is confirmed."""
    pm = payment_method(pm_id, now, {})
    del pm["card"]
    pm["type"] = "us_bank_account"
    pm["us_bank_account"] = {
        "account_holder_type": "individual",
        "account_type": "checking",
        "bank_name": "STRIPE TEST BANK",
        "financial_connections_account": None,
        "fingerprint": fingerprint,
        "last4": last4,
        "networks": {"preferred": "ach", "supported": ["ach"]},
        "routing_number": "110000000",
        "status_details": {},
    }
    return pm


def refund(re_id: str, now: int, ch: dict[str, Any], amount: int) -> dict[str, Any]:
    return {
        "id": re_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": ch["id"],
        "created": now,
        "currency": ch["currency"],
        "customer": ch["customer"],
        "customer_account": None,
        "destination_details": {
            "card": {
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": {},
        "payment_intent": ch["payment_intent"],
        "payment_method": ch["payment_method"],
        "reason": None,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }


def balance_transaction(
    txn_id: str,
    now: int,
    amount: int,
    currency: str,
    fee: int,
    source: str,
    kind: str,
    description: str | None,
) -> dict[str, Any]:
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": now + 2 * 86400,
        "balance_type": "payments",
        "created": now,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        ),
        "net": amount - fee,
        "reporting_category": {"charge": "charge", "refund": "refund", "payout": "payout"}.get(
            kind, "adjustment"
        ),
        "source": source,
        "status": "pending",
        "type": kind,
    }


def payout(po_id: str, now: int, amount: int, currency: str, arrival_date: int) -> dict[str, Any]:
    return {
        "id": po_id,
        "object": "payout",
        "amount": amount,
        "application_fee": None,
        "application_fee_amount": None,
        "arrival_date": arrival_date,
        "automatic": True,
        "balance_transaction": None,
        "created": now,
        "currency": currency,
        "description": "STRIPE PAYOUT",
        "destination": None,  # the emulator's account has no external account to expand
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "original_payout": None,
        "payout_method": None,
        "reconciliation_status": "not_applicable",
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": "pending",
        "trace_id": {"status": "pending", "value": None},
        "type": "bank_account",
    }


def product(prod_id: str, now: int, name: str) -> dict[str, Any]:
    return {
        "id": prod_id,
        "object": "product",
        "active": True,
        "created": now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": now,
        "url": None,
    }


def price(price_id: str, now: int, product_id: str, currency: str, unit_amount: int | None) -> dict[str, Any]:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": now,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product_id,
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def plan_from_price(price_obj: dict[str, Any]) -> dict[str, Any]:
    """The legacy `plan` view of a recurring price that subscription items still carry."""
    recurring = price_obj["recurring"] or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": price_obj["metadata"],
        "meter": recurring.get("meter"),
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": price_obj["tiers_mode"],
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


def subscription(sub_id: str, now: int, customer_id: str, currency: str) -> dict[str, Any]:
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"flexible": None, "type": "classic"},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": now,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": {},
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def subscription_item(si_id: str, now: int, sub_id: str, price_id: str, quantity: int) -> dict[str, Any]:
    return {
        "id": si_id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": now,
        "current_period_end": now,
        "current_period_start": now,
        "discounts": [],
        "metadata": {},
        "price": price_id,
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def invoice(in_id: str, now: int, cust: dict[str, Any], account_name: str) -> dict[str, Any]:
    return {
        "id": in_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": account_name,
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": "manual",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": cust.get("currency") or "usd",
        "custom_fields": None,
        "customer": cust["id"],
        "customer_account": None,
        "customer_address": cust.get("address"),
        "customer_email": cust.get("email"),
        "customer_name": cust.get("name"),
        "customer_phone": cust.get("phone"),
        "customer_shipping": cust.get("shipping"),
        "customer_tax_exempt": cust.get("tax_exempt", "none"),
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": None,
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": now,
        "period_start": now,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": cust.get("test_clock"),
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def invoiceitem(ii_id: str, now: int, customer_id: str, currency: str) -> dict[str, Any]:
    return {
        "id": ii_id,
        "object": "invoiceitem",
        "amount": 0,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "date": now,
        "description": None,
        "discountable": True,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": 0,
        "parent": None,
        "period": {"end": now, "start": now},
        "pricing": None,
        "proration": False,
        "quantity": 1,
        "quantity_decimal": "1",
        "tax_rates": [],
        "test_clock": None,
    }


def line_item(il_id: str, in_id: str, currency: str) -> dict[str, Any]:
    return {
        "id": il_id,
        "object": "line_item",
        "amount": 0,
        "currency": currency,
        "description": None,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": in_id,
        "livemode": False,
        "metadata": {},
        "parent": None,
        "period": {"end": 0, "start": 0},
        "pretax_credit_amounts": [],
        "pricing": None,
        "quantity": 1,
        "quantity_decimal": "1",
        "subscription": None,
        "subtotal": 0,
        "taxes": [],
    }


def webhook_endpoint(
    we_id: str, now: int, url: str, events: list[str], api_version: str | None
) -> dict[str, Any]:
    return {
        "id": we_id,
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": now,
        "description": None,
        "enabled_events": events,
        "livemode": False,
        "metadata": {},
        "status": "enabled",
        "url": url,
    }


def invoice_payment(inpay_id: str, now: int, inv: dict[str, Any], pi_id: str) -> dict[str, Any]:
    return {
        "id": inpay_id,
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": inv["amount_due"],
        "created": now,
        "currency": inv["currency"],
        "invoice": inv["id"],
        "is_default": True,
        "livemode": False,
        "payment": {"payment_intent": pi_id, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


# ---------------------------------------------------------------------- test clocks, Checkout, the
# customer portal, meters and disputes
def test_clock(clock_id: str, now: int, frozen_time: int, name: str | None) -> dict[str, Any]:
    return {
        "id": clock_id,
        "object": "test_helpers.test_clock",
        "created": now,
        "deletes_after": now + 30 * 86400,
        "frozen_time": frozen_time,
        "livemode": False,
        "name": name,
        "status": "ready",
        "status_details": {},
    }


def checkout_session(cs_id: str, now: int, mode: str, url: str) -> dict[str, Any]:
    return {
        "id": cs_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": None,
        "client_reference_id": None,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": None,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_account": None,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "discounts": [],
        "expires_at": now + 24 * 3600,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": None,
        "managed_payments": None,
        "metadata": {},
        "mode": mode,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always" if mode == "subscription" else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": None,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": url,
        "wallet_options": None,
    }


def checkout_item(li_id: str, price_obj: dict[str, Any], quantity: int, description: str) -> dict[str, Any]:
    amount = int(price_obj["unit_amount"] or 0) * quantity
    return {
        "id": li_id,
        "object": "item",
        "adjustable_quantity": None,
        "amount_discount": 0,
        "amount_subtotal": amount,
        "amount_tax": 0,
        "amount_total": amount,
        "currency": price_obj["currency"],
        "description": description,
        "metadata": {},
        "price": price_obj["id"],
        "quantity": quantity,
    }


def portal_configuration(bpc_id: str, now: int) -> dict[str, Any]:
    return {
        "id": bpc_id,
        "object": "billing_portal.configuration",
        "active": True,
        "application": None,
        "business_profile": {"headline": None, "privacy_policy_url": None, "terms_of_service_url": None},
        "created": now,
        "default_return_url": None,
        "features": {
            "customer_update": {"allowed_updates": ["email", "name", "address"], "enabled": True},
            "invoice_history": {"enabled": True},
            "payment_method_update": {"enabled": True, "payment_method_configuration": None},
            "subscription_cancel": {
                "cancellation_reason": {"enabled": False, "options": []},
                "enabled": True,
                "mode": "at_period_end",
                "proration_behavior": "none",
            },
            "subscription_update": {
                "billing_cycle_anchor": None,
                "default_allowed_updates": ["price"],
                "enabled": True,
                "products": None,
                "proration_behavior": "create_prorations",
                "schedule_at_period_end": {"conditions": []},
                "trial_update_behavior": "end_trial",
            },
        },
        "is_default": True,
        "livemode": False,
        "login_page": {"enabled": False, "url": None},
        "metadata": {},
        "name": None,
        "updated": now,
    }


def portal_session(
    bps_id: str, now: int, customer_id: str, configuration_id: str, return_url: str | None, url: str
) -> dict[str, Any]:
    return {
        "id": bps_id,
        "object": "billing_portal.session",
        "configuration": configuration_id,
        "created": now,
        "customer": customer_id,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": return_url,
        "url": url,
    }


def meter(mtr_id: str, now: int, display_name: str, event_name: str) -> dict[str, Any]:
    return {
        "id": mtr_id,
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
        "default_aggregation": {"formula": "sum"},
        "display_name": display_name,
        "event_name": event_name,
        "event_time_window": None,
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": "value"},
    }


def meter_event(
    identifier: str, now: int, event_name: str, payload: dict[str, str], timestamp: int
) -> dict[str, Any]:
    return {
        "id": identifier,  # the store's key; not served
        "object": "billing.meter_event",
        "created": now,
        "event_name": event_name,
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": timestamp,
    }


def meter_event_summary(
    summary_id: str, meter_id: str, start: int, end: int, value: float | int
) -> dict[str, Any]:
    return {
        "id": summary_id,
        "object": "billing.meter_event_summary",
        "aggregated_value": value,
        "end_time": end,
        "livemode": False,
        "meter": meter_id,
        "start_time": start,
    }


def dispute(
    dp_id: str, now: int, ch: dict[str, Any], amount: int, reason: str, status: str
) -> dict[str, Any]:
    card = (ch.get("payment_method_details") or {}).get("card") or {}
    return {
        "id": dp_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": ch["id"],
        "created": now,
        "currency": ch["currency"],
        "enhanced_eligibility_types": [],
        "evidence": {
            key: None
            for key in (
                "access_activity_log",
                "billing_address",
                "cancellation_policy",
                "cancellation_policy_disclosure",
                "cancellation_rebuttal",
                "customer_communication",
                "customer_email_address",
                "customer_name",
                "customer_purchase_ip",
                "customer_signature",
                "duplicate_charge_documentation",
                "duplicate_charge_explanation",
                "duplicate_charge_id",
                "product_description",
                "receipt",
                "refund_policy",
                "refund_policy_disclosure",
                "refund_refusal_explanation",
                "service_date",
                "service_documentation",
                "shipping_address",
                "shipping_carrier",
                "shipping_date",
                "shipping_documentation",
                "shipping_tracking_number",
                "uncategorized_file",
                "uncategorized_text",
            )
        }
        | {"enhanced_evidence": {}},
        "evidence_details": {
            "due_by": now + 7 * 86400,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": ch["payment_intent"],
        "payment_method_details": {
            "card": {
                "brand": card.get("brand", "visa"),
                "case_type": "inquiry" if status.startswith("warning") else "chargeback",
                "network": card.get("network") or card.get("brand", "visa"),
                "network_reason_code": "10.4" if reason == "fraudulent" else "13.1",
            },
            "type": "card",
        },
        "reason": reason,
        "status": status,
    }

"""Checkout Sessions (`checkout.session`): the API, and what the hosted page does when the
customer pays (`submit`, `finish_after_authentication`; the page itself is in `hosted.py`).

Modes: `payment` (one-time prices; a PaymentIntent with `payment_intent_data`), `subscription`
(recurring prices plus optional one-time ones; `subscription_data[trial_period_days|trial_end|
metadata|description]`), `setup` (a SetupIntent). As in Stripe, the customer, the PaymentIntent,
the subscription or the SetupIntent are made when the customer submits the page, not when the
session is created; a declined card leaves the session open for another try; a card that needs
authentication goes through the 3-D Secure page and comes back. Completion fires
`checkout.session.completed` and the customer is sent to `success_url` (with
`{CHECKOUT_SESSION_ID}` replaced). In `payment` mode the page also offers a US bank account debit,
a delayed-notification payment method: the session completes with `payment_status: "unpaid"`, and
when the debit settles (`payments.BANK_SETTLE_SECONDS` later on the payer's clock) Stripe's
`checkout.session.async_payment_succeeded` or `checkout.session.async_payment_failed` follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import invoicing, objects, payments, subscriptions
from .errors import InvalidRequestError, StripeError, invalid, missing
from .params import Params, object_param, price_param

if TYPE_CHECKING:
    from .app import Context

Obj = dict[str, Any]
MIN_EXPIRY, MAX_EXPIRY = 30 * 60, 24 * 3600
# The hosted page's buttons: a name, the Stripe test card behind it, and what it does.
PAGE_CARDS = {
    "success": ("pm_card_visa", "4242 4242 4242 4242", "succeeds"),
    "decline": ("pm_card_chargeDeclined", "4000 0000 0000 0002", "is declined"),
    "authenticate": ("pm_card_authenticationRequired", "4000 0027 6000 3184", "needs 3-D Secure"),
}
# Payment mode only: bank debits that settle later (async_payment_succeeded / _failed).
PAGE_BANKS = {
    "bank_success": ("pm_usBankAccount_success", "US bank account ••6789", "settles a minute later"),
    "bank_failure": ("pm_usBankAccount_accountClosed", "US bank account ••1113", "fails a minute later"),
}


def items_of(emu: Any, session: Obj) -> list[Obj]:
    store = emu.store
    return [
        store.objects["checkout_item"][i] for i in session["_items"] if i in store.objects["checkout_item"]
    ]


def page_url(base_url: str, session_id: str) -> str:
    return f"{base_url}/c/pay/{session_id}"


# ---------------------------------------------------------------------- creating
SESSION_FIELDS = {
    "mode",
    "line_items",
    "customer",
    "customer_email",
    "customer_creation",
    "client_reference_id",
    "metadata",
    "success_url",
    "cancel_url",
    "return_url",
    "payment_intent_data",
    "subscription_data",
    "setup_intent_data",
    "expires_at",
    "currency",
    "payment_method_types",
    "payment_method_collection",
    "payment_method_options",
    "payment_method_configuration",
    "locale",
    "allow_promotion_codes",
    "discounts",
    "billing_address_collection",
    "shipping_address_collection",
    "shipping_options",
    "phone_number_collection",
    "tax_id_collection",
    "automatic_tax",
    "consent_collection",
    "custom_fields",
    "custom_text",
    "customer_update",
    "invoice_creation",
    "submit_type",
    "ui_mode",
    "redirect_on_completion",
    "saved_payment_method_options",
    "after_expiration",
    "adaptive_pricing",
    "optional_items",
    "origin_context",
    "wallet_options",
    "permissions",
    "branding_settings",
    "name_collection",
}


def _item_price(ctx: Context, ip: Params, mode: str) -> Obj:
    if "price_data" in ip:
        data = ip.dict("price_data")
        currency = (data.str("currency", required=True) or "").lower()
        product_id = data.str("product")
        if product_id:
            product = object_param(ctx, "product", product_id, data.name("product"))
        else:
            product_data = data.dict("product_data")
            product = objects.product(
                ctx.store.new_id("product", 19), ctx.now(), product_data.str("name", required=True) or ""
            )
            product["metadata"] = product_data.metadata() or {}
            product["description"] = product_data.str("description")
            ctx.store.add("product", product)
        price = objects.price(
            ctx.store.new_id("price"),
            ctx.now(),
            product["id"],
            currency,
            data.int("unit_amount", required=True, minimum=0),
        )
        price["active"] = False  # inline prices are not reusable, as in Stripe
        if "recurring" in data:
            recurring = data.dict("recurring")
            price["type"] = "recurring"
            price["recurring"] = {
                "interval": recurring.enum("interval", ["day", "week", "month", "year"]) or "month",
                "interval_count": recurring.int("interval_count", 1, minimum=1),
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        ctx.store.add("price", price)
        return price
    return price_param(ctx, ip)


def create_session(ctx: Context, p: Params) -> Obj:
    mode = p.enum("mode", ["payment", "subscription", "setup"])
    if mode is None:
        raise missing("mode")
    ui_mode = p.enum("ui_mode", ["hosted_page", "embedded_page", "elements", "form"], "hosted_page")
    if ui_mode != "hosted_page":
        raise invalid("ui_mode", "The emulator serves hosted Checkout only.", "parameter_invalid_string")
    success_url = p.str("success_url")
    if not success_url:
        raise missing("success_url")
    customer = None
    if p.str("customer"):
        if p.str("customer_email"):
            raise InvalidRequestError(
                "You may only specify one of these parameters: customer, customer_email.",
                param="customer_email",
            )
        customer = object_param(ctx, "customer", p.str("customer"), "customer")
    item_params = p.list_of_dicts("line_items")
    if mode == "setup" and item_params:
        raise InvalidRequestError("You cannot pass `line_items` in `setup` mode.", param="line_items")
    if mode != "setup" and not item_params:
        raise missing("line_items")
    now = ctx.now(customer)
    session = objects.checkout_session("", now, mode, "")
    session["id"] = "cs_test_a1" + ctx.store.random_string(56)
    session["url"] = page_url(ctx.base_url, session["id"])
    session["_items"] = []
    prices: list[tuple[Obj, int]] = []
    for ip in item_params:
        price = _item_price(ctx, ip, mode)
        metered = invoicing.is_metered(price)  # billed in arrears: Stripe takes no quantity for it
        quantity = ip.int("quantity", 1 if metered else None, required=not metered, minimum=1)
        assert quantity is not None
        prices.append((price, quantity))
    if mode == "payment" and any(price["type"] == "recurring" for price, _ in prices):
        raise InvalidRequestError(
            "You specified `payment` mode but passed a recurring price. Either switch to `subscription` "
            "mode or use only one-time prices.",
            param="line_items",
        )
    if mode == "subscription" and not any(price["type"] == "recurring" for price, _ in prices):
        raise InvalidRequestError(
            "You must provide at least one recurring price in `subscription` mode when using prices.",
            param="line_items",
        )
    currencies = {price["currency"] for price, _ in prices}
    if len(currencies) > 1:
        raise InvalidRequestError("All prices must have the same currency.", param="line_items")
    currency = currencies.pop() if currencies else (p.str("currency") or "").lower() or None
    for price, quantity in prices:
        item = objects.checkout_item(
            ctx.store.new_id("checkout_item", 24), price, quantity, invoicing.product_name(ctx, price)
        )
        ctx.store.add("checkout_item", item)
        session["_items"].append(item["id"])
    subtotal = sum(
        invoicing.unit_amount(price) * quantity
        for price, quantity in prices
        if not invoicing.is_metered(price)
    )
    sub_data = p.dict("subscription_data")
    pi_data = p.dict("payment_intent_data")
    seti_data = p.dict("setup_intent_data")
    if mode != "subscription" and "subscription_data" in p:
        raise InvalidRequestError(
            "You can only pass `subscription_data` in `subscription` mode.", param="subscription_data"
        )
    if mode != "payment" and "payment_intent_data" in p:
        raise InvalidRequestError(
            "You can only pass `payment_intent_data` in `payment` mode.", param="payment_intent_data"
        )
    trial_days = sub_data.int("trial_period_days", minimum=1)
    trial_end = sub_data.int("trial_end")
    if trial_end is not None and trial_end < now + 2 * 86400:
        raise invalid(
            "subscription_data[trial_end]",
            "The `trial_end` date has to be at least 2 days in the future.",
            "parameter_invalid_integer",
        )
    expires_at = p.int("expires_at")
    if expires_at is not None and not now + MIN_EXPIRY <= expires_at <= now + MAX_EXPIRY:
        raise invalid(
            "expires_at",
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session "
            "creation.",
            "parameter_invalid_integer",
        )
    due_now = subtotal
    if mode == "subscription" and (trial_days or trial_end):
        due_now = sum(
            invoicing.unit_amount(price) * quantity
            for price, quantity in prices
            if price["type"] != "recurring"
        )
    session.update(
        {
            "amount_subtotal": None if mode == "setup" else due_now,
            "amount_total": None if mode == "setup" else due_now,
            "cancel_url": p.str("cancel_url"),
            "client_reference_id": p.str("client_reference_id"),
            "currency": currency,
            "customer": customer["id"] if customer else None,
            "customer_creation": None
            if customer or mode == "subscription"
            else p.enum("customer_creation", ["always", "if_required"], "if_required"),
            "customer_email": p.str("customer_email"),
            "expires_at": expires_at or now + MAX_EXPIRY,
            "locale": p.str("locale"),
            "metadata": p.metadata() or {},
            "payment_status": "no_payment_required" if mode == "setup" else "unpaid",
            "submit_type": p.str("submit_type"),
            "success_url": success_url,
            "allow_promotion_codes": p.bool("allow_promotion_codes"),
            "billing_address_collection": p.str("billing_address_collection"),
        }
    )
    if p.list("payment_method_types"):
        session["payment_method_types"] = p.list("payment_method_types")
    session["_payment_intent_data"] = {
        "metadata": pi_data.metadata() or {},
        "description": pi_data.str("description"),
        "setup_future_usage": pi_data.enum("setup_future_usage", ["on_session", "off_session"]),
        "capture_method": pi_data.enum("capture_method", ["automatic", "automatic_async", "manual"]),
        "receipt_email": pi_data.str("receipt_email"),
        "statement_descriptor": pi_data.str("statement_descriptor"),
    }
    session["_subscription_data"] = {
        "metadata": sub_data.metadata() or {},
        "description": sub_data.str("description"),
        "trial_period_days": trial_days,
        "trial_end": trial_end,
        "missing_payment_method": sub_data.dict("trial_settings")
        .dict("end_behavior")
        .enum("missing_payment_method", ["cancel", "create_invoice", "pause"], "create_invoice"),
    }
    session["_setup_intent_data"] = {
        "metadata": seti_data.metadata() or {},
        "description": seti_data.str("description"),
    }
    session["_due_now"] = due_now
    return ctx.store.add("checkout_session", session)


# ---------------------------------------------------------------------- what the page does
@dataclass
class Outcome:
    status: str  # "complete", "requires_action", "declined", "closed"
    redirect: str | None = None
    message: str | None = None


def success_redirect(session: Obj) -> str:
    return (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session["id"])


def _ensure_customer(ctx: Context, session: Obj, email: str | None, name: str | None) -> Obj | None:
    if session["customer"]:
        return ctx.store.require("customer", session["customer"])
    if session["mode"] != "subscription" and session["customer_creation"] != "always":
        return None  # a guest payment: the details stay on the session
    customer = objects.customer(
        ctx.store.new_id("customer", 14), ctx.now(), ctx.store.random_string(8).upper()
    )
    customer["email"] = email or session["customer_email"]
    customer["name"] = name or None
    ctx.store.add("customer", customer)
    ctx.emit("customer.created", customer)
    session["customer"] = customer["id"]
    return customer


def _set_details(ctx: Context, session: Obj, email: str | None, name: str | None) -> None:
    customer = ctx.store.get("customer", session["customer"])
    session["customer_details"] = {
        "address": objects.empty_address(),
        "business_name": None,
        "email": email or session["customer_email"] or (customer or {}).get("email"),
        "individual_name": None,
        "name": name or (customer or {}).get("name"),
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def submit(
    ctx: Context, session: Obj, card: str, email: str | None = None, name: str | None = None
) -> Outcome:
    """The customer pays (or saves a card) with a test card (`success`, `decline`, `authenticate`,
    or any Stripe test id such as `pm_card_visa`)."""
    if session["status"] != "open":
        return Outcome("closed", message=f"This Checkout Session is {session['status']}.")
    card_id = {**PAGE_CARDS, **PAGE_BANKS}[card][0] if card in PAGE_CARDS or card in PAGE_BANKS else card
    bank = card_id in payments.BANK_ACCOUNTS
    if bank and session["mode"] != "payment":
        return Outcome("declined", message="Bank debits are offered in payment mode only.")
    if card_id not in payments.TEST_CARDS and not bank:
        return Outcome("declined", message=f"Unknown test card {card!r}.")
    customer = _ensure_customer(ctx, session, email, name)
    _set_details(ctx, session, email, name)
    if bank:
        pm = payments.new_bank_payment_method(ctx, card_id)
        pm["billing_details"].update({"email": session["customer_details"]["email"], "name": name})
    else:
        pm = payments.new_payment_method(
            ctx, card_id, billing_details={"email": session["customer_details"]["email"], "name": name}
        )
    return_url = f"{page_url(ctx.base_url, session['id'])}/return"
    try:
        if session["mode"] == "payment":
            return _pay(ctx, session, customer, pm, return_url)
        if session["mode"] == "setup" or session["_due_now"] == 0:
            return _set_up(ctx, session, customer, pm, return_url)
        return _subscribe_and_pay(ctx, session, customer, pm, return_url)
    except StripeError as error:
        return Outcome("declined", message=error.message)


def _intent_outcome(ctx: Context, session: Obj, intent: Obj, result: payments.PaymentResult) -> Outcome:
    if result.status in ("succeeded", "requires_capture", "processing"):
        return complete(ctx, session)
    if result.status == "requires_action":
        return Outcome("requires_action", redirect=intent["next_action"]["redirect_to_url"]["url"])
    return Outcome("declined", message=result.error.message if result.error else "Your card was declined.")


def _pay(ctx: Context, session: Obj, customer: Obj | None, pm: Obj, return_url: str) -> Outcome:
    pi = ctx.store.get("payment_intent", session["payment_intent"])
    data = session["_payment_intent_data"]
    if pi is None:
        pi = objects.payment_intent(
            ctx.store.new_id("payment_intent"),
            ctx.now(customer),
            ctx.store.random_string(25),
            session["amount_total"],
            session["currency"],
        )
        pi["customer"] = customer["id"] if customer else None
        pi["metadata"] = dict(data["metadata"])
        pi["description"] = data["description"]
        pi["setup_future_usage"] = data["setup_future_usage"]
        pi["capture_method"] = data["capture_method"] or "automatic_async"
        pi["receipt_email"] = data["receipt_email"] or session["customer_details"]["email"]
        pi["statement_descriptor"] = data["statement_descriptor"]
        pi["_checkout_session"] = session["id"]
        ctx.store.add("payment_intent", pi)
        ctx.emit("payment_intent.created", pi)
        session["payment_intent"] = pi["id"]
    result = payments.confirm_payment_intent(ctx, pi, pm, off_session=False, return_url=return_url)
    return _intent_outcome(ctx, session, pi, result)


def _set_up(ctx: Context, session: Obj, customer: Obj | None, pm: Obj, return_url: str) -> Outcome:
    seti = ctx.store.get("setup_intent", session["setup_intent"])
    if seti is None or seti["status"] == "succeeded":
        seti = objects.setup_intent(
            ctx.store.new_id("setup_intent"), ctx.now(customer), ctx.store.random_string(25)
        )
        seti["customer"] = customer["id"] if customer else None
        data = session["_setup_intent_data"]
        seti["metadata"] = dict(data["metadata"]) if session["mode"] == "setup" else {}
        seti["description"] = data["description"] if session["mode"] == "setup" else None
        ctx.store.add("setup_intent", seti)
        ctx.emit("setup_intent.created", seti)
        session["setup_intent"] = seti["id"]
    result = payments.confirm_setup_intent(ctx, seti, pm, return_url)
    if result.status == "succeeded":
        return _after_setup(ctx, session, seti)
    return _intent_outcome(ctx, session, seti, result)


def _after_setup(ctx: Context, session: Obj, seti: Obj) -> Outcome:
    if (
        session["mode"] == "subscription"
    ):  # a trial (nothing due now): the card is saved, then the subscription
        session["setup_intent"] = None  # Stripe keeps it on the subscription (`pending_setup_intent`) instead
        pm = ctx.store.require("payment_method", seti["payment_method"])
        _create_subscription(ctx, session, pm)
    return complete(ctx, session)


def _create_subscription(ctx: Context, session: Obj, pm: Obj | None) -> Obj:
    customer = ctx.store.require("customer", session["customer"])
    data = session["_subscription_data"]
    now = ctx.now(customer)
    specs, one_time = [], []
    for item in items_of(ctx.emulator, session):
        price = ctx.store.require("price", item["price"])
        spec = invoicing.ItemSpec(price, item["quantity"])
        (specs if price["type"] == "recurring" else one_time).append(spec)
    trial_end = data["trial_end"] or (
        now + data["trial_period_days"] * 86400 if data["trial_period_days"] else None
    )
    sub = subscriptions.create_subscription(
        ctx,
        customer,
        specs,
        trial_end=trial_end,
        default_pm=pm,
        payment_behavior="default_incomplete",
        collection_method="charge_automatically",
        days_until_due=None,
        metadata=dict(data["metadata"]),
        description=data["description"],
        cancel_at_period_end=False,
        off_session=False,
        one_time=one_time,
        missing_pm_behavior=data["missing_payment_method"],
        save_default_payment_method="on_subscription",
    )
    session["subscription"] = sub["id"]
    session["invoice"] = sub["latest_invoice"]
    return sub


def _subscribe_and_pay(ctx: Context, session: Obj, customer: Obj | None, pm: Obj, return_url: str) -> Outcome:
    sub = ctx.store.get("subscription", session["subscription"])
    if sub is None:
        sub = _create_subscription(ctx, session, None)
    inv = ctx.store.require("invoice", sub["latest_invoice"])
    if inv["status"] == "paid":
        return complete(ctx, session)
    pi = invoicing.invoice_payment_intent(ctx, inv)
    if pi is None or pi["status"] in ("canceled", "succeeded"):
        raise InvalidRequestError("This subscription's first invoice cannot be paid any more.")
    pi["setup_future_usage"] = "off_session"  # the card is saved for the renewals
    result = payments.confirm_payment_intent(ctx, pi, pm, off_session=False, return_url=return_url)
    return _intent_outcome(ctx, session, pi, result)


def finish_after_authentication(ctx: Context, session: Obj) -> Outcome:
    """The customer is back from the 3-D Secure page: complete, or show why not."""
    if session["status"] != "open":
        return Outcome("closed", message=f"This Checkout Session is {session['status']}.")
    if session["mode"] == "payment":
        intent = ctx.store.get("payment_intent", session["payment_intent"])
    elif session["mode"] == "setup" or session["_due_now"] == 0:
        intent = ctx.store.get("setup_intent", session["setup_intent"])
    else:
        sub = ctx.store.get("subscription", session["subscription"])
        inv = ctx.store.get("invoice", sub["latest_invoice"]) if sub else None
        intent = invoicing.invoice_payment_intent(ctx, inv) if inv else None
    if intent is None:
        return Outcome("declined", message="Nothing to authenticate.")
    if intent["status"] in ("succeeded", "requires_capture"):
        if intent["object"] == "setup_intent":
            return _after_setup(ctx, session, intent)
        return complete(ctx, session)
    error = intent.get("last_payment_error") or intent.get("last_setup_error") or {}
    return Outcome("declined", message=error.get("message") or "The payment was not completed.")


def complete(ctx: Context, session: Obj) -> Outcome:
    before = {"status": session["status"], "payment_status": session["payment_status"]}
    session["status"] = "complete"
    pi = ctx.store.get("payment_intent", session["payment_intent"])
    if session["mode"] == "setup" or (session["mode"] == "subscription" and session["_due_now"] == 0):
        session["payment_status"] = "no_payment_required"
    elif pi is not None and pi["status"] == "processing":
        session["payment_status"] = "unpaid"  # a delayed-notification payment: async_payment_* follows
    else:
        session["payment_status"] = "paid"
    if session["customer_details"] is None:
        _set_details(ctx, session, None, None)
    ctx.emit("checkout.session.completed", session, before)
    return Outcome("complete", redirect=success_redirect(session))


def async_payment_settled(ctx: Context, pi: Obj) -> None:
    """The bank debit of a completed session settled (or failed): Stripe's async_payment_* event."""
    session = ctx.store.get("checkout_session", pi.get("_checkout_session"))
    if session is None or session["status"] != "complete" or session["payment_status"] != "unpaid":
        return
    if pi["status"] == "succeeded":
        before = {"payment_status": "unpaid"}
        session["payment_status"] = "paid"
        ctx.emit("checkout.session.async_payment_succeeded", session, before)
    else:
        ctx.emit("checkout.session.async_payment_failed", session)


def expire_session(ctx: Context, session: Obj) -> Obj:
    if session["status"] != "open":
        raise InvalidRequestError(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This session has a status of '
            f"{session['status']}."
        )
    before = {"status": "open"}
    session["status"] = "expired"
    ctx.emit("checkout.session.expired", session, before)
    return session


# ---------------------------------------------------------------------- endpoints

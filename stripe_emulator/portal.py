"""The customer portal (`billing_portal.session`, `billing_portal.configuration`): the API, and
the actions the hosted page offers (`hosted.py` renders it). Every action goes through the same
billing rules as the API, so it fires the events Stripe would:

- cancel at period end / renew (undo): `customer.subscription.updated`;
- cancel now: `customer.subscription.deleted`;
- switch to another active recurring price: `customer.subscription.updated` (prorations by the
  configuration's `subscription_update.proration_behavior`, `create_prorations` by default);
- replace the card: a SetupIntent (`setup_intent.created/succeeded`, 3-D Secure when the card
  asks), `payment_method.attached`, `customer.updated` (new default) and
  `customer.subscription.updated` for subscriptions that had their own default;
- pay an open invoice with the default card: `invoice.paid` and the rest of a payment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import invoicing, objects, payments, subscriptions
from .errors import InvalidRequestError
from .params import Params, merge_metadata

if TYPE_CHECKING:
    from .app import Context

Obj = dict[str, Any]
# The page's "replace card" choices: Stripe test card, label.
PAGE_CARDS = {
    "pm_card_visa": "Visa 4242 4242 4242 4242",
    "pm_card_mastercard": "Mastercard 5555 5555 5555 4444",
    "pm_card_chargeCustomerFail": "Visa 4000 0000 0000 0341 (saves, later charges decline)",
    "pm_card_authenticationRequiredOnSetup": "Visa 4000 0025 0000 3155 (3-D Secure once)",
    "pm_card_chargeDeclined": "Visa 4000 0000 0000 0002 (declined)",
}
LIVE = ("active", "trialing", "past_due", "unpaid", "incomplete", "paused")


def page_url(base_url: str, session_id: str) -> str:
    return f"{base_url}/p/session/{session_id}"


# ---------------------------------------------------------------------- configurations
def default_configuration(ctx: Context) -> Obj:
    for config in ctx.store.all("portal_configuration"):
        if config["is_default"]:
            return config
    config = objects.portal_configuration(ctx.store.new_id("portal_configuration", 24), ctx.now())
    return ctx.store.add("portal_configuration", config)


def apply_configuration(config: Obj, p: Params) -> None:
    if "business_profile" in p:
        bp = p.dict("business_profile")
        for key in ("headline", "privacy_policy_url", "terms_of_service_url"):
            if key in bp:
                config["business_profile"][key] = bp.str(key)
    if "default_return_url" in p:
        config["default_return_url"] = p.str("default_return_url")
    features = p.dict("features")
    for name, feature in config["features"].items():
        given = features.dict(name)
        if "enabled" in given:
            feature["enabled"] = bool(given.bool("enabled"))
        if "proration_behavior" in given:
            feature["proration_behavior"] = given.enum(
                "proration_behavior", ["create_prorations", "none", "always_invoice"]
            )
        if "mode" in given:
            feature["mode"] = given.enum("mode", ["at_period_end", "immediately"])
        if "products" in given:
            feature["products"] = [
                {"prices": list(item.list("prices")), "product": item.str("product")}
                for item in given.list_of_dicts("products")
            ]
    if "active" in p:
        config["active"] = bool(p.bool("active"))
    config["metadata"] = merge_metadata(config["metadata"] or {}, p.metadata())


# ---------------------------------------------------------------------- what the page does
def subscriptions_of(ctx: Context, customer_id: str) -> list[Obj]:
    return [
        s
        for s in reversed(ctx.store.all("subscription"))
        if s["customer"] == customer_id and s["status"] in LIVE
    ]


def switchable_prices(ctx: Context, config: Obj, sub: Obj) -> list[Obj]:
    """Active licensed recurring prices in the subscription's currency, other than its own,
    limited to the configuration's `subscription_update.products` when set."""
    current = {item["price"] for item in invoicing.items_of(ctx, sub)}
    allowed = config["features"]["subscription_update"].get("products")
    out = []
    for price in ctx.store.all("price"):
        recurring = price["recurring"] or {}
        if (
            not price["active"]
            or price["type"] != "recurring"
            or recurring.get("usage_type") == "metered"
            or price["currency"] != sub["currency"]
            or price["id"] in current
        ):
            continue
        if allowed and not any(
            entry["product"] == price["product"] and (not entry["prices"] or price["id"] in entry["prices"])
            for entry in allowed
        ):
            continue
        out.append(price)
    return out


def _owned_subscription(ctx: Context, session: Obj, sub_id: str | None) -> Obj:
    sub = ctx.store.get("subscription", sub_id)
    if sub is None or sub["customer"] != session["customer"]:
        raise InvalidRequestError("No such subscription for this customer.", param="subscription")
    return sub


def _changed(ctx: Context, sub: Obj, before: Obj) -> None:
    after = ctx.render(sub)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    if previous:
        ctx.emit("customer.subscription.updated", sub, previous)


def cancel(ctx: Context, session: Obj, sub_id: str | None, *, at_period_end: bool) -> Obj:
    sub = _owned_subscription(ctx, session, sub_id)
    config = ctx.store.require("portal_configuration", session["configuration"])
    if not config["features"]["subscription_cancel"]["enabled"]:
        raise InvalidRequestError("Cancelling is turned off in this portal configuration.")
    if at_period_end:
        before = ctx.render(sub)
        subscriptions.schedule_cancel(ctx, sub, ctx.now(sub))
        _changed(ctx, sub, before)
        return sub
    prorate = config["features"]["subscription_cancel"]["proration_behavior"] != "none"
    return subscriptions.cancel_subscription(ctx, sub, reason="cancellation_requested", prorate=prorate)


def renew(ctx: Context, session: Obj, sub_id: str | None) -> Obj:
    """Undo a cancellation scheduled for the period end."""
    sub = _owned_subscription(ctx, session, sub_id)
    if not sub["cancel_at_period_end"] and not sub["cancel_at"]:
        raise InvalidRequestError("This subscription is not set to cancel.")
    before = ctx.render(sub)
    subscriptions.unschedule_cancel(sub)
    _changed(ctx, sub, before)
    return sub


def switch(ctx: Context, session: Obj, sub_id: str | None, price_id: str | None) -> Obj:
    sub = _owned_subscription(ctx, session, sub_id)
    config = ctx.store.require("portal_configuration", session["configuration"])
    feature = config["features"]["subscription_update"]
    if not feature["enabled"]:
        raise InvalidRequestError("Plan changes are turned off in this portal configuration.")
    price = next((p for p in switchable_prices(ctx, config, sub) if p["id"] == price_id), None)
    if price is None:
        raise InvalidRequestError(f"The price {price_id} is not available here.", param="price")
    items = invoicing.items_of(ctx, sub)
    if len(items) != 1:
        raise InvalidRequestError("The portal switches subscriptions that have one item.")
    before = ctx.render(sub)
    subscriptions.update_items(
        ctx,
        sub,
        [subscriptions.ItemChange(items[0]["id"], price, None)],
        proration_behavior=feature["proration_behavior"],
        proration_date=None,
        payment_behavior="allow_incomplete",
    )
    _changed(ctx, sub, before)
    return sub


def start_card_update(ctx: Context, session: Obj, card: str | None, return_url: str) -> Obj:
    """Saves a new card through a SetupIntent; the SetupIntent may need 3-D Secure first."""
    if card not in payments.TEST_CARDS:
        raise InvalidRequestError(f"Unknown test card {card!r}.", param="card")
    customer = ctx.store.require("customer", session["customer"])
    pm = payments.new_payment_method(ctx, card, billing_details={"email": customer["email"]})
    seti = objects.setup_intent(
        ctx.store.new_id("setup_intent"), ctx.now(customer), ctx.store.random_string(25)
    )
    seti["customer"] = customer["id"]
    ctx.store.add("setup_intent", seti)
    ctx.emit("setup_intent.created", seti)
    result = payments.confirm_setup_intent(ctx, seti, pm, return_url)
    if result.error is not None:
        raise result.error
    if result.status == "succeeded":
        finish_card_update(ctx, session, seti)
    return seti


def finish_card_update(ctx: Context, session: Obj, seti: Obj) -> None:
    """The card is saved: it becomes the customer's default and that of its subscriptions that
    had a default of their own."""
    if seti["status"] != "succeeded" or seti["customer"] != session["customer"]:
        raise InvalidRequestError("The card was not saved.")
    customer = ctx.store.require("customer", session["customer"])
    pm_id = seti["payment_method"]
    if customer["invoice_settings"]["default_payment_method"] != pm_id:
        before = {"invoice_settings": dict(customer["invoice_settings"])}
        customer["invoice_settings"]["default_payment_method"] = pm_id
        ctx.emit("customer.updated", customer, before)
    for sub in subscriptions_of(ctx, customer["id"]):
        if sub["default_payment_method"] and sub["default_payment_method"] != pm_id:
            before = ctx.render(sub)
            sub["default_payment_method"] = pm_id
            _changed(ctx, sub, before)


def pay_invoice(ctx: Context, session: Obj, invoice_id: str | None) -> Obj:
    inv = ctx.store.get("invoice", invoice_id)
    if inv is None or inv["customer"] != session["customer"] or inv["status"] != "open":
        raise InvalidRequestError("No open invoice to pay.", param="invoice")
    result = invoicing.pay_invoice(ctx, inv, off_session=False)
    if result.error is not None:
        raise result.error
    if result.status == "requires_action":
        raise InvalidRequestError("This payment needs authentication: pay it from the invoice page.")
    return inv


ACTIONS = ("cancel_at_period_end", "cancel_now", "renew", "switch", "update_card", "pay_invoice")


def act(ctx: Context, session: Obj, form: dict[str, str], return_url: str) -> Obj | None:
    """One action of the page; returns a SetupIntent that needs 3-D Secure, if any."""
    action = form.get("action")
    if action == "cancel_at_period_end":
        cancel(ctx, session, form.get("subscription"), at_period_end=True)
    elif action == "cancel_now":
        cancel(ctx, session, form.get("subscription"), at_period_end=False)
    elif action == "renew":
        renew(ctx, session, form.get("subscription"))
    elif action == "switch":
        switch(ctx, session, form.get("subscription"), form.get("price"))
    elif action == "update_card":
        seti = start_card_update(ctx, session, form.get("card"), return_url)
        return seti if seti["status"] == "requires_action" else None
    elif action == "pay_invoice":
        pay_invoice(ctx, session, form.get("invoice"))
    else:
        raise InvalidRequestError(f"Unknown action {action!r}; one of {', '.join(ACTIONS)}.")
    return None


def after_completion_url(session: Obj) -> str | None:
    flow = session.get("flow") or {}
    after = flow.get("after_completion") or {}
    if after.get("type") == "redirect":
        return (after.get("redirect") or {}).get("return_url")
    return None

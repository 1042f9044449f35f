"""The hosted pages a customer sees: Checkout (`/c/pay/{session}`), the customer portal
(`/p/session/{session}`) and the payment buttons of a hosted invoice. Plain HTML forms that post
back to the emulator, no JavaScript: they work in a browser and with any HTTP client.

Checkout: `GET /c/pay/{id}`; `POST /c/pay/{id}` with `card` = `success` | `decline` |
`authenticate` (or any Stripe test id such as `pm_card_visa`), and optional `email`, `name`.
Answers 303 to `success_url`, 303 to the 3-D Secure page (which comes back to
`/c/pay/{id}/return`), or the page again with the decline (402).

Portal: `GET /p/session/{id}`; `POST /p/session/{id}` with `action` = `cancel_at_period_end` |
`cancel_now` | `renew` (with `subscription`), `switch` (with `subscription`, `price`),
`update_card` (with `card`, a test id), `pay_invoice` (with `invoice`). Answers 303 back to the
page (or to the flow's redirect), or the page with the error (400/402).

Invoice: `POST /i/{id}/{token}/pay` with `card` as for Checkout.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from . import checkout, invoicing, payments, portal
from .clock import format_date
from .errors import CardError, StripeError

if TYPE_CHECKING:
    from .app import Emulator, Response

Obj = dict[str, Any]
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:760px;margin:2em auto;padding:0 1em;color:#1a1f36}"
    "table{width:100%;border-collapse:collapse;margin:1em 0}"
    "td,th{padding:6px;border-bottom:1px solid #e3e8ee;"
    "text-align:left}.test{background:#ffde92;display:inline-block;padding:2px 8px;border-radius:4px;"
    "font-size:12px}.error{background:#fde8e8;color:#a4141d;padding:10px;border-radius:4px}"
    ".notice{background:#e6f4ea;padding:10px;border-radius:4px}button{margin:4px 4px 4px 0;padding:8px 12px;"
    "border-radius:4px;border:1px solid #635bff;background:#635bff;color:#fff;cursor:pointer}"
    "button.secondary{background:#fff;color:#635bff}label{display:block;margin:8px 0}"
    "input,select{padding:6px;min-width:260px}section{border:1px solid #e3e8ee;border-radius:6px;padding:1em;"
    "margin:1em 0}"
)


def page(status: int, title: str, body: str) -> Response:
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
        "content='width=device-width,initial-scale=1'><title>"
        + html.escape(title)
        + f"</title><style>{STYLE}</style></head><body><span class='test'>TEST MODE · Stripe emulator</span>"
        + body
        + "</body></html>"
    )
    return status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, text.encode()


def redirect(url: str) -> Response:
    body = f"<!doctype html><a href='{html.escape(url)}'>Continue</a>".encode()
    return 303, {"Location": url, "Content-Type": "text/html; charset=utf-8"}, body


def form_of(body: bytes | str | None) -> dict[str, str]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body or "", keep_blank_values=True).items()}


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _price_text(price: Obj) -> str:
    amount = invoicing.money(invoicing.unit_amount(price), price["currency"])
    recurring = price.get("recurring")
    if not recurring:
        return amount
    every = (
        recurring["interval"]
        if recurring["interval_count"] == 1
        else (f"{recurring['interval_count']} {recurring['interval']}s")
    )
    return f"{amount} / {every}"


def _merchant(emu: Emulator) -> str:
    return emu.account["settings"]["dashboard"]["display_name"]


# ---------------------------------------------------------------------- Checkout
def checkout_page(emu: Emulator, method: str, session_id: str, rest: str, body: Any) -> Response:
    session = emu.store.get("checkout_session", session_id)
    if session is None:
        return page(404, "Not found", "<h1>This Checkout page does not exist.</h1>")
    with emu.context() as ctx:
        if rest == "/return":
            outcome = checkout.finish_after_authentication(ctx, session)
        elif method == "POST":
            form = form_of(body)
            outcome = checkout.submit(
                ctx, session, form.get("card", "success"), form.get("email"), form.get("name")
            )
        else:
            return render_checkout(emu, session)
    if outcome.redirect:
        return redirect(outcome.redirect)
    return render_checkout(
        emu, session, error=outcome.message, status=402 if outcome.status == "declined" else 409
    )


def render_checkout(emu: Emulator, session: Obj, *, error: str | None = None, status: int = 200) -> Response:
    merchant = _merchant(emu)
    if session["status"] != "open":
        back = session["success_url"] if session["status"] == "complete" else session["cancel_url"]
        text = (
            "Thanks, this payment is complete."
            if session["status"] == "complete"
            else "This page has expired."
        )
        target = checkout.success_redirect(session) if session["status"] == "complete" else back
        link = f"<p><a href='{e(target)}'>"
        link += f"Return to {e(merchant)}</a></p>" if back else ""
        return page(status if error else 200, merchant, f"<h1>{e(text)}</h1>{link if back else ''}")
    rows = ""
    for item in checkout.items_of(emu, session):
        price = emu.store.get("price", item["price"]) or {}
        rows += (
            f"<tr><td>{e(item['description'])}</td><td>{item['quantity']}</td>"
            f"<td>{e(_price_text(price)) if price else ''}</td></tr>"
        )
    mode = session["mode"]
    data = session["_subscription_data"]
    trial = data.get("trial_period_days") or (
        max(1, round((data["trial_end"] - session["created"]) / 86400)) if data.get("trial_end") else None
    )
    due = invoicing.money(session["amount_total"] or 0, session["currency"] or "usd")
    if mode == "setup":
        heading, action = "Save a card for future payments", "Save card"
    elif mode == "subscription" and trial:
        heading, action = f"Start your {trial}-day free trial", "Start trial"
    elif mode == "subscription":
        heading, action = "Subscribe", f"Subscribe · {due} today"
    else:
        heading, action = "Pay", f"Pay {due}"
    customer = emu.store.get("customer", session["customer"])
    email = (
        (session["customer_details"] or {}).get("email")
        or session["customer_email"]
        or (customer or {}).get("email")
    )
    readonly = " readonly" if customer is not None and customer.get("email") else ""
    choices = {**checkout.PAGE_CARDS, **(checkout.PAGE_BANKS if mode == "payment" else {})}
    buttons = "".join(
        f"<button name='card' value='{key}'{' class=secondary' if key != 'success' else ''}>"
        f"{e(action)} with {e(number)} <small>({e(effect)})</small></button><br>"
        for key, (_, number, effect) in choices.items()
    )
    body = (
        f"<h1>{e(merchant)}</h1><h2>{e(heading)}</h2>"
        + (f"<p class='error' role='alert'>{e(error)}</p>" if error else "")
        + (
            f"<table><tr><th>Item</th><th>Qty</th><th>Price</th></tr>{rows}</table>"
            f"<p><strong>Due today: {e(due)}</strong></p>"
            if mode != "setup"
            else ""
        )
        + f"<form method='post' action='/c/pay/{e(session['id'])}'>"
        f"<label>Email <input type='email' name='email' value='{e(email)}'{readonly}></label>"
        "<label>Name on card <input name='name' autocomplete='cc-name'></label>"
        f"<fieldset><legend>Test card</legend>{buttons}</fieldset></form>"
        + (
            f"<p><a href='{e(session['cancel_url'])}'>&larr; Back to {e(merchant)}</a></p>"
            if session["cancel_url"]
            else ""
        )
    )
    return page(status, f"{heading} · {merchant}", body)


# ---------------------------------------------------------------------- the customer portal
def portal_page(emu: Emulator, method: str, session_id: str, rest: str, query: str, body: Any) -> Response:
    session = emu.store.get("portal_session", session_id)
    if session is None:
        return page(404, "Not found", "<h1>This portal session does not exist.</h1>")
    here = f"{emu.base_url}/p/session/{session_id}"
    if rest == "/card_return":
        seti_id = parse_qs(query).get("setup_intent", [""])[0]
        with emu.context() as ctx:
            seti = ctx.store.get("setup_intent", seti_id)
            try:
                if seti is None:
                    raise StripeError("Nothing to finish.")
                portal.finish_card_update(ctx, session, seti)
            except StripeError as error:
                return render_portal(emu, session, error=error.message, status=402)
        return redirect(portal.after_completion_url(session) or f"{here}?done=update_card")
    if method == "POST":
        form = form_of(body)
        with emu.context() as ctx:
            try:
                pending = portal.act(ctx, session, form, f"{here}/card_return")
            except StripeError as error:
                return render_portal(
                    emu, session, error=error.message, status=402 if isinstance(error, CardError) else 400
                )
        if pending is not None:
            pending["next_action"]["redirect_to_url"]["return_url"] = (
                f"{here}/card_return?setup_intent={pending['id']}"
            )
            return redirect(pending["next_action"]["redirect_to_url"]["url"])
        return redirect(
            portal.after_completion_url(session) or f"{here}?{urlencode({'done': form.get('action', '')})}"
        )
    done = parse_qs(query).get("done", [None])[0]
    return render_portal(emu, session, notice=DONE.get(done or ""))


DONE = {
    "cancel_at_period_end": "Your plan will be canceled at the end of the billing period.",
    "cancel_now": "Your plan has been canceled.",
    "renew": "Your plan will renew.",
    "switch": "Your plan has been updated.",
    "update_card": "Your payment method has been updated.",
    "pay_invoice": "The invoice has been paid.",
}


def render_portal(
    emu: Emulator, session: Obj, *, error: str | None = None, notice: str | None = None, status: int = 200
) -> Response:
    with emu.context() as ctx:
        customer = ctx.store.get("customer", session["customer"])
        if customer is None:
            return page(410, "Gone", "<h1>This customer no longer exists.</h1>")
        config = ctx.store.require("portal_configuration", session["configuration"])
        subs = portal.subscriptions_of(ctx, customer["id"])
        flow = session.get("flow") or {}
        focus = None
        if flow.get("type") in ("subscription_cancel", "subscription_update", "subscription_update_confirm"):
            focus = flow[flow["type"]]["subscription"]
        parts = [
            f"<h1>{e(_merchant(emu))}</h1>"
            f"<p>Signed in as {e(customer['email'] or customer['name'] or customer['id'])}</p>"
        ]
        if error:
            parts.append(f"<p class='error' role='alert'>{e(error)}</p>")
        if notice:
            parts.append(f"<p class='notice' role='status'>{e(notice)}</p>")
        action = f"/p/session/{e(session['id'])}"
        parts.append("<section><h2>Current plan</h2>")
        if not subs:
            parts.append("<p>No active subscription.</p>")
        for sub in subs:
            if focus and sub["id"] != focus:
                continue
            items = invoicing.items_of(ctx, sub)
            prices = [ctx.store.get("price", item["price"]) for item in items]
            names = ", ".join(
                f"{invoicing.product_name(ctx, price)} · {_price_text(price)}" for price in prices if price
            )
            _, end = invoicing.period_of(ctx, sub)
            if sub["cancel_at"]:
                when = f"Cancels on {format_date(sub['cancel_at'])}"
            elif sub["status"] == "trialing":
                when = f"Trial ends on {format_date(sub['trial_end'])}"
            else:
                when = f"Renews on {format_date(end)}"
            sub_field = f"<input type='hidden' name='subscription' value='{e(sub['id'])}'>"
            parts.append(
                f"<div data-subscription='{e(sub['id'])}'><p><strong>{e(names)}</strong> "
                f"<span>({e(sub['status'])})</span><br>{e(when)}</p>"
            )
            features = config["features"]
            if features["subscription_cancel"]["enabled"]:
                if sub["cancel_at_period_end"] or sub["cancel_at"]:
                    parts.append(
                        f"<form method='post' action='{action}'>{sub_field}"
                        "<button name='action' value='renew'>Renew plan</button></form>"
                    )
                else:
                    parts.append(
                        f"<form method='post' action='{action}'>{sub_field}"
                        "<button name='action' value='cancel_at_period_end' class='secondary'>"
                        "Cancel at period end</button>"
                        "<button name='action' value='cancel_now' class='secondary'>Cancel now</button>"
                        "</form>"
                    )
            choices = (
                portal.switchable_prices(ctx, config, sub)
                if features["subscription_update"]["enabled"]
                else []
            )
            if choices:
                options = "".join(
                    f"<option value='{e(p['id'])}'>"
                    f"{e(invoicing.product_name(ctx, p))} · {e(_price_text(p))}</option>"
                    for p in choices
                )
                parts.append(
                    f"<form method='post' action='{action}'>{sub_field}<input type='hidden' name='action' "
                    f"value='switch'><label>Switch plan <select name='price'>{options}</select></label>"
                    "<button>Update plan</button></form>"
                )
            parts.append("</div>")
        parts.append("</section>")
        if config["features"]["payment_method_update"]["enabled"]:
            pm = ctx.store.get("payment_method", customer["invoice_settings"]["default_payment_method"])
            card = (
                f"{pm['card']['brand'].title()} •••• {pm['card']['last4']}, expires "
                f"{pm['card']['exp_month']:02d}/{pm['card']['exp_year']}"
                if pm
                else "No default payment method"
            )
            buttons = "".join(
                f"<button name='card' value='{e(key)}' class='secondary'>{e(label)}</button><br>"
                for key, label in portal.PAGE_CARDS.items()
            )
            parts.append(
                f"<section><h2>Payment method</h2><p data-card>{e(card)}</p>"
                f"<form method='post' action='{action}'>"
                "<input type='hidden' name='action' value='update_card'>"
                f"<fieldset><legend>Replace with a test card</legend>{buttons}</fieldset></form></section>"
            )
        if config["features"]["invoice_history"]["enabled"]:
            rows = ""
            invoices = [
                i
                for i in reversed(ctx.store.all("invoice"))
                if i["customer"] == customer["id"] and i["status"] != "draft"
            ]
            for inv in invoices[:24]:
                pay = (
                    f"<form method='post' action='{action}'>"
                    f"<input type='hidden' name='invoice' value='{e(inv['id'])}'>"
                    "<button name='action' value='pay_invoice'>Pay now</button></form>"
                    if inv["status"] == "open"
                    else ""
                )
                rows += (
                    f"<tr><td>{e(format_date(inv['created']))}</td><td>{e(inv['number'])}</td>"
                    f"<td>{e(invoicing.money(inv['total'], inv['currency']))}</td><td>{e(inv['status'])}</td>"
                    f"<td><a href='{e(inv['hosted_invoice_url'])}'>View</a></td><td>{pay}</td></tr>"
                )
            parts.append(
                "<section><h2>Invoice history</h2>"
                + (
                    f"<table><tr><th>Date</th><th>Number</th><th>Amount</th><th>Status</th><th></th><th></th></tr>"
                    f"{rows}</table>"
                    if rows
                    else "<p>No invoices yet.</p>"
                )
                + "</section>"
            )
        if session["return_url"]:
            parts.append(
                f"<p><a href='{e(session['return_url'])}' data-return>"
                f"&larr; Return to {e(_merchant(emu))}</a></p>"
            )
    return page(status, f"Billing · {_merchant(emu)}", "".join(parts))


# ---------------------------------------------------------------------- hosted invoice: pay
def invoice_pay(emu: Emulator, inv: Obj, body: Any) -> Response:
    from .pages import invoice_page

    here = inv["hosted_invoice_url"]
    form = form_of(body)
    card = form.get("card", "success")
    card_id = checkout.PAGE_CARDS[card][0] if card in checkout.PAGE_CARDS else card
    if inv["status"] != "open" or card_id not in payments.TEST_CARDS:
        return redirect(here)
    with emu.context() as ctx:
        try:
            pm = payments.new_payment_method(ctx, card_id)
            result = invoicing.pay_invoice(ctx, inv, pm=pm, off_session=False)
        except StripeError as error:
            return invoice_page(emu, inv, error=error.message, status=402)
        if result.status == "requires_action":
            pi = invoicing.invoice_payment_intent(ctx, inv)
            assert pi is not None
            pi["next_action"]["redirect_to_url"]["return_url"] = here
            return redirect(pi["next_action"]["redirect_to_url"]["url"])
        if result.error is not None:
            return invoice_page(emu, inv, error=result.error.message, status=402)
    return redirect(here)

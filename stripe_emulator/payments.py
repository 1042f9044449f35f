"""Cards and money movement: Stripe's test payment methods, PaymentIntent and SetupIntent
confirmation, charges, refunds and balance transactions.

The behaviour of a card comes from Stripe's published test ids (`pm_card_visa`,
`pm_card_chargeDeclined`, ...) or test numbers (`4000000000000002`, ...). Using a test id
creates a new PaymentMethod, as Stripe does.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import objects
from .errors import CardError, InvalidRequestError, StripeError

if TYPE_CHECKING:
    from .app import Context


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    funding: str = "credit"
    country: str = "US"
    decline_code: str | None = None  # the `decline_code` of a declined charge
    error_code: str = "card_declined"
    fails_on_attach: bool = False
    authentication: str | None = None  # "always" or "setup"
    dispute: str | None = None  # "chargeback" or "inquiry": the charge succeeds, then is disputed


DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
    "card_velocity_exceeded": (
        "Your card was declined for making repeated attempts too frequently or exceeding its amount limit."
    ),
    "fraudulent": "Your card was declined.",
}

TEST_CARDS: dict[str, TestCard] = {
    "pm_card_visa": TestCard("visa", "4242"),
    "pm_card_visa_debit": TestCard("visa", "5556", funding="debit"),
    "pm_card_mastercard": TestCard("mastercard", "4444"),
    "pm_card_amex": TestCard("amex", "8431"),
    "pm_card_chargeDeclined": TestCard("visa", "0002", decline_code="generic_decline", fails_on_attach=True),
    "pm_card_chargeDeclinedInsufficientFunds": TestCard(
        "visa", "9995", decline_code="insufficient_funds", fails_on_attach=True
    ),
    "pm_card_chargeDeclinedLostCard": TestCard(
        "visa", "9987", decline_code="lost_card", fails_on_attach=True
    ),
    "pm_card_chargeDeclinedStolenCard": TestCard(
        "visa", "9979", decline_code="stolen_card", fails_on_attach=True
    ),
    "pm_card_chargeDeclinedExpiredCard": TestCard(
        "visa", "0069", decline_code="expired_card", error_code="expired_card", fails_on_attach=True
    ),
    "pm_card_chargeDeclinedIncorrectCvc": TestCard(
        "visa", "0127", decline_code="incorrect_cvc", error_code="incorrect_cvc", fails_on_attach=True
    ),
    "pm_card_chargeDeclinedProcessingError": TestCard(
        "visa", "0119", decline_code="processing_error", error_code="processing_error", fails_on_attach=True
    ),
    "pm_card_chargeCustomerFail": TestCard("visa", "0341", decline_code="generic_decline"),
    "pm_card_authenticationRequired": TestCard("visa", "3184", authentication="always"),
    "pm_card_authenticationRequiredOnSetup": TestCard("visa", "3155", authentication="setup"),
    "pm_card_createDispute": TestCard("visa", "0259", dispute="chargeback"),
    "pm_card_createDisputeInquiry": TestCard("visa", "1976", dispute="inquiry"),
    "pm_card_mastercard_debit": TestCard("mastercard", "8210", funding="debit"),
    "pm_card_mastercard_prepaid": TestCard("mastercard", "5100", funding="prepaid"),
    "pm_card_discover": TestCard("discover", "1117"),
    "pm_card_diners": TestCard("diners", "0004"),
    "pm_card_jcb": TestCard("jcb", "0505"),
    "pm_card_unionpay": TestCard("unionpay", "0005"),
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": TestCard(
        "visa", "6975", decline_code="card_velocity_exceeded", fails_on_attach=True
    ),
    "pm_card_radarBlock": TestCard("visa", "0019", decline_code="fraudulent", fails_on_attach=True),
    "pm_card_threeDSecure2Required": TestCard("visa", "3220", authentication="always"),
    "pm_card_threeDSecureRequired": TestCard("visa", "3063", authentication="always"),
}
# The names Stripe's testing page gives the same cards.
TEST_CARDS |= {
    "pm_card_visa_chargeDeclined": TEST_CARDS["pm_card_chargeDeclined"],
    "pm_card_visa_chargeDeclinedInsufficientFunds": TEST_CARDS["pm_card_chargeDeclinedInsufficientFunds"],
    "pm_card_visa_chargeDeclinedLostCard": TEST_CARDS["pm_card_chargeDeclinedLostCard"],
    "pm_card_visa_chargeDeclinedStolenCard": TEST_CARDS["pm_card_chargeDeclinedStolenCard"],
    "pm_card_visa_chargeDeclinedExpiredCard": TEST_CARDS["pm_card_chargeDeclinedExpiredCard"],
    "pm_card_visa_chargeDeclinedIncorrectCvc": TEST_CARDS["pm_card_chargeDeclinedIncorrectCvc"],
    "pm_card_visa_chargeDeclinedProcessingError": TEST_CARDS["pm_card_chargeDeclinedProcessingError"],
}
TEST_NUMBERS = {
    "4242424242424242": "pm_card_visa",
    "4000056655665556": "pm_card_visa_debit",
    "5555555555554444": "pm_card_mastercard",
    "378282246310005": "pm_card_amex",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000009987": "pm_card_chargeDeclinedLostCard",
    "4000000000009979": "pm_card_chargeDeclinedStolenCard",
    "4000000000000069": "pm_card_chargeDeclinedExpiredCard",
    "4000000000000127": "pm_card_chargeDeclinedIncorrectCvc",
    "4000000000000119": "pm_card_chargeDeclinedProcessingError",
    "4000000000000341": "pm_card_chargeCustomerFail",
    "4000002760003184": "pm_card_authenticationRequired",
    "4000002500003155": "pm_card_authenticationRequiredOnSetup",
    "4000000000000259": "pm_card_createDispute",
    "4000000000001976": "pm_card_createDisputeInquiry",
    "5200828282828210": "pm_card_mastercard_debit",
    "5105105105105100": "pm_card_mastercard_prepaid",
    "6011111111111117": "pm_card_discover",
    "3056930009020004": "pm_card_diners",
    "3566002020360505": "pm_card_jcb",
    "6200000000000005": "pm_card_unionpay",
    "4000000000006975": "pm_card_visa_chargeDeclinedVelocityLimitExceeded",
    "4100000000000019": "pm_card_radarBlock",
    "4000000000003220": "pm_card_threeDSecure2Required",
    "4000000000003063": "pm_card_threeDSecureRequired",
}
# Delayed-notification payments: a US bank account debit is `processing` when confirmed and settles
# (or fails) BANK_SETTLE_SECONDS later, on the payer's clock (`emu.advance`, `emu.tick`, the server).
BANK_ACCOUNTS = {
    "pm_usBankAccount_success": ("6789", None),
    "pm_usBankAccount_accountClosed": ("1113", "account_closed"),
    "pm_usBankAccount_insufficientFunds": ("2227", "insufficient_funds"),
}
BANK_FAILURES = {
    "account_closed": "The customer's bank account has been closed.",
    "insufficient_funds": "The customer's account has insufficient funds to cover this payment.",
}
BANK_SETTLE_SECONDS = 60
MINIMUM_AMOUNT = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "aud": 50, "jpy": 50, "chf": 50}


def card_details(
    name: str, account_id: str, exp_month: int = 12, exp_year: int | None = None
) -> dict[str, Any]:
    card = TEST_CARDS[name]
    fingerprint = hashlib.sha256(f"{account_id}:{card.brand}:{card.last4}".encode()).hexdigest()[:16]
    return {
        "brand": card.brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
        "country": card.country,
        "display_brand": card.brand,
        "exp_month": exp_month,
        "exp_year": exp_year or 2034,
        "fingerprint": fingerprint,
        "funding": card.funding,
        "generated_from": None,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def new_payment_method(
    ctx: Context, test_card: str, *, billing_details: dict | None = None, **card_kw
) -> dict:
    now = ctx.now()
    pm = objects.payment_method(
        ctx.store.new_id("payment_method"),
        now,
        card_details(test_card, ctx.emulator.account["id"], **card_kw),
    )
    pm["_card"] = test_card
    if billing_details:
        pm["billing_details"].update({k: v for k, v in billing_details.items() if k != "address"})
        if billing_details.get("address"):
            pm["billing_details"]["address"].update(billing_details["address"])
    return ctx.store.add("payment_method", pm)


def new_bank_payment_method(ctx: Context, test_id: str) -> dict[str, Any]:
    last4, failure = BANK_ACCOUNTS[test_id]
    fingerprint = hashlib.sha256(f"{ctx.emulator.account['id']}:bank:{last4}".encode()).hexdigest()[:16]
    pm = objects.bank_payment_method(ctx.store.new_id("payment_method"), ctx.now(), last4, fingerprint)
    pm["_card"] = None
    pm["_bank_failure"] = failure
    return ctx.store.add("payment_method", pm)


def resolve_payment_method(ctx: Context, pm_id: str, param: str = "payment_method") -> dict[str, Any]:
    """A stored PaymentMethod, or a new one for a test id such as `pm_card_visa`."""
    if pm_id in TEST_CARDS:
        return new_payment_method(ctx, pm_id)
    if pm_id in BANK_ACCOUNTS:
        return new_bank_payment_method(ctx, pm_id)
    pm = ctx.store.get("payment_method", pm_id)
    if pm is None:
        raise InvalidRequestError(f"No such PaymentMethod: '{pm_id}'", code="resource_missing", param=param)
    return pm


def test_card(pm: dict[str, Any]) -> TestCard:
    return TEST_CARDS.get(pm.get("_card") or "pm_card_visa", TEST_CARDS["pm_card_visa"])


def card_for_attempt(ctx: Context, pm: dict[str, Any]) -> TestCard:
    """The card's behaviour for one payment attempt: its own, unless an injected decline fault
    (`emu.faults.add(decline=...)`) makes this attempt decline."""
    card = test_card(pm)
    code = ctx.emulator.faults.take_decline(ctx.method, ctx.path)
    if code is None:
        return card
    from .faults import DECLINE_ERROR_CODES

    return dataclasses.replace(
        card,
        decline_code=code,
        error_code=code if code in DECLINE_ERROR_CODES else "card_declined",
        authentication=None,
    )


def card_error(card: TestCard, **extra: Any) -> CardError:
    code = card.error_code
    decline = card.decline_code or "generic_decline"
    return CardError(
        DECLINE_MESSAGES.get(decline, "Your card was declined."),
        code=code,
        decline_code=decline if code == "card_declined" else None,
        param=None,
        extra=extra,
    )


def authentication_error(**extra: Any) -> CardError:
    return CardError(
        DECLINE_MESSAGES["authentication_required"],
        code="authentication_required",
        decline_code="authentication_required",
        extra=extra,
    )


NOT_REUSABLE = (
    "This PaymentMethod was previously used without being attached to a Customer or was detached from a "
    "Customer, and may not be used again."
)


def check_reusable(pm: dict[str, Any], intent_id: str | None = None, param: str = "payment_method") -> None:
    """A PaymentMethod belongs to one customer for life: once detached, or once used for a payment
    without being attached to a customer, Stripe refuses it everywhere (except for another try on
    the intent that used it)."""
    used_by = pm.get("_used_by")
    if pm.get("_detached") or (used_by and used_by != intent_id and not pm["customer"]):
        raise InvalidRequestError(NOT_REUSABLE, param=param)


def attach(ctx: Context, pm: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    if pm["customer"] == customer["id"]:
        return pm
    if pm["customer"]:
        raise InvalidRequestError(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    check_reusable(pm)
    card = test_card(pm)
    if card.fails_on_attach:
        raise card_error(card, payment_method=ctx.render(pm))
    pm["customer"] = customer["id"]
    ctx.emit("payment_method.attached", pm)
    return pm


def detach(ctx: Context, pm: dict[str, Any]) -> dict[str, Any]:
    customer_id = pm["customer"]
    if not customer_id:
        raise InvalidRequestError(
            f"The payment method {pm['id']} is not attached to a customer.",
            code="payment_method_unexpected_state",
        )
    pm["customer"] = None
    pm["_detached"] = True
    customer = ctx.store.get("customer", customer_id)
    if customer and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        before = {"invoice_settings": dict(customer["invoice_settings"])}
        customer["invoice_settings"]["default_payment_method"] = None
        ctx.emit("customer.updated", customer, before)
    ctx.emit("payment_method.detached", pm, {"customer": customer_id})
    return pm


# ---------------------------------------------------------------------- PaymentIntents
@dataclass
class PaymentResult:
    status: str  # succeeded, requires_capture, requires_action, failed
    error: StripeError | None = None


def confirm_payment_intent(
    ctx: Context, pi: dict[str, Any], pm: dict[str, Any], *, off_session: bool, return_url: str | None = None
) -> PaymentResult:
    """Runs the card; returns the result (the HTTP handler raises `result.error`)."""
    check_reusable(pm, pi["id"])
    pi["payment_method"] = pm["id"]
    pi["last_payment_error"] = None
    pi["next_action"] = None
    if pm["type"] == "us_bank_account":
        return _start_bank_debit(ctx, pi, pm)
    card = card_for_attempt(ctx, pm)
    if pi["customer"] and pi.get("setup_future_usage") and not pm["customer"]:
        customer = ctx.store.get("customer", pi["customer"])
        if customer is not None and not card.fails_on_attach:
            attach(ctx, pm, customer)
    if not pm["customer"] and not pi.get("_invoice"):  # an invoice's payment may save it to the customer
        pm["_used_by"] = pi["id"]  # used without being attached: it cannot be attached later
    if card.authentication == "always" or (
        card.authentication == "setup" and not _set_up_for(pm, off_session)
    ):
        if off_session:
            return _fail(ctx, pi, pm, authentication_error(), charge=False)
        pi["status"] = "requires_action"
        pi["next_action"] = {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "return_url": return_url,
                "url": f"{ctx.base_url}/_emulator/authenticate/{pi['id']}",
            },
        }
        ctx.emit("payment_intent.requires_action", pi)
        if pi.get("_invoice"):
            from .invoicing import invoice_action_required

            invoice_action_required(ctx, pi)
        return PaymentResult("requires_action")
    if card.decline_code:
        return _fail(ctx, pi, pm, card_error(card), charge=True)
    result = _succeed(ctx, pi, pm)
    if card.dispute and result.status == "succeeded":
        from .disputes import open_dispute

        charge = ctx.store.require("charge", pi["latest_charge"])
        open_dispute(ctx, charge, reason="fraudulent", inquiry=card.dispute == "inquiry")
    return result


def _start_bank_debit(ctx: Context, pi: dict[str, Any], pm: dict[str, Any]) -> PaymentResult:
    now = ctx.now(pi)
    ch = objects.charge(ctx.store.new_id("charge"), now, pi, pm)
    ch["status"] = "pending"
    ctx.store.add("charge", ch)
    pi["latest_charge"] = ch["id"]
    pi["status"] = "processing"
    pi["payment_method_types"] = sorted({*pi["payment_method_types"], "us_bank_account"})
    pi["_settle_at"] = now + BANK_SETTLE_SECONDS
    ctx.emit("charge.pending", ch)
    ctx.emit("payment_intent.processing", pi)
    return PaymentResult("processing")


def settle_bank_debit(ctx: Context, pi: dict[str, Any]) -> None:
    """The bank answers: the debit succeeds, or fails with the test account's failure."""
    if pi["status"] != "processing":
        return
    pi.pop("_settle_at", None)
    pm = ctx.store.require("payment_method", pi["payment_method"])
    ch = ctx.store.require("charge", pi["latest_charge"])
    failure = pm.get("_bank_failure")
    if failure is None:
        before = {"status": "pending"}
        ch["status"] = "succeeded"
        ch["paid"] = True
        ch["outcome"] = _outcome(None)
        _capture(ctx, ch, ctx.now(pi))
        pi["status"] = "succeeded"
        pi["amount_received"] = pi["amount"]
        ctx.emit("charge.succeeded", ch, before)
        ctx.emit("payment_intent.succeeded", pi)
        if pi.get("_invoice"):
            from .invoicing import invoice_payment_succeeded

            invoice_payment_succeeded(ctx, pi)
    else:
        ch["status"] = "failed"
        ch["failure_code"] = failure
        ch["failure_message"] = BANK_FAILURES[failure]
        pi["status"] = "requires_payment_method"
        pi["last_payment_error"] = {
            "charge": ch["id"],
            "code": failure,
            "decline_code": None,
            "doc_url": f"https://docs.stripe.com/error-codes/{failure.replace('_', '-')}",
            "message": BANK_FAILURES[failure],
            "payment_method": ctx.render(pm),
            "type": "invalid_request_error",
        }
        ctx.emit("charge.failed", ch)
        ctx.emit("payment_intent.payment_failed", pi)
        if pi.get("_invoice"):
            from .invoicing import invoice_payment_attempt_failed

            invoice_payment_attempt_failed(ctx, pi)
    if pi.get("_checkout_session"):
        from .checkout import async_payment_settled

        async_payment_settled(ctx, pi)


def _set_up_for(pm: dict[str, Any], off_session: bool) -> bool:
    """`authenticationRequiredOnSetup` cards pay off-session once set up for future use."""
    return bool(off_session and pm.get("_set_up"))


def _succeed(ctx: Context, pi: dict[str, Any], pm: dict[str, Any]) -> PaymentResult:
    now = ctx.now(pi)
    ch = objects.charge(ctx.store.new_id("charge"), now, pi, pm)
    ch["status"] = "succeeded"
    ch["paid"] = True
    ch["outcome"] = _outcome(None)
    ch["receipt_url"] = f"{ctx.base_url}/receipts/{ch['id']}"
    manual = pi["capture_method"] == "manual"
    if not manual:
        _capture(ctx, ch, now)
    ctx.store.add("charge", ch)
    pi["latest_charge"] = ch["id"]
    if manual:
        pi["status"] = "requires_capture"
        pi["amount_capturable"] = pi["amount"]
        ctx.emit("charge.succeeded", ch)
        ctx.emit("payment_intent.amount_capturable_updated", pi)
        return PaymentResult("requires_capture")
    pi["status"] = "succeeded"
    pi["amount_received"] = pi["amount"]
    ctx.emit("charge.succeeded", ch)
    ctx.emit("payment_intent.succeeded", pi)
    if pi.get("_invoice"):
        from .invoicing import invoice_payment_succeeded

        invoice_payment_succeeded(ctx, pi)
    return PaymentResult("succeeded")


def _capture(ctx: Context, ch: dict[str, Any], now: int, amount: int | None = None) -> None:
    """Captures `amount` (default: all) of the charge; as in Stripe, a partial capture keeps the
    charge's `amount`, sets `amount_captured`, and releases the rest (`amount_refunded`)."""
    captured = ch["amount"] if amount is None else amount
    ch["captured"] = True
    ch["amount_captured"] = captured
    if captured < ch["amount"]:
        ch["amount_refunded"] = ch["_released"] = ch["amount"] - captured
    fee = round(captured * 0.029) + 30
    txn = objects.balance_transaction(
        ctx.store.new_id("balance_transaction"),
        now,
        captured,
        ch["currency"],
        fee,
        ch["id"],
        "charge",
        ch["description"],
    )
    ctx.store.add("balance_transaction", txn)
    ch["balance_transaction"] = txn["id"]


def capture_payment_intent(ctx: Context, pi: dict[str, Any], amount: int | None) -> dict[str, Any]:
    if pi["status"] != "requires_capture":
        raise InvalidRequestError(
            f"This PaymentIntent could not be captured because it has a status of {pi['status']}. Only a "
            "PaymentIntent with one of the following statuses may be captured: requires_capture.",
            code="payment_intent_unexpected_state",
        )
    ch = ctx.store.require("charge", pi["latest_charge"])
    if amount is not None and not 0 < amount <= ch["amount"]:
        raise InvalidRequestError(
            "The amount to capture cannot exceed the amount authorized.", param="amount_to_capture"
        )
    _capture(ctx, ch, ctx.now(pi), amount)
    pi["status"] = "succeeded"
    pi["amount_capturable"] = 0
    pi["amount_received"] = ch["amount_captured"]
    ctx.emit("charge.captured", ch)
    ctx.emit("payment_intent.succeeded", pi)
    if pi.get("_invoice"):
        from .invoicing import invoice_payment_succeeded

        invoice_payment_succeeded(ctx, pi)
    return pi


def _fail(
    ctx: Context, pi: dict[str, Any], pm: dict[str, Any], error: CardError, *, charge: bool
) -> PaymentResult:
    now = ctx.now(pi)
    charge_id = None
    if charge:
        ch = objects.charge(ctx.store.new_id("charge"), now, pi, pm)
        ch["status"] = "failed"
        ch["failure_code"] = error.code
        ch["failure_message"] = error.message
        ch["outcome"] = _outcome(error.decline_code or error.code)
        ctx.store.add("charge", ch)
        pi["latest_charge"] = charge_id = ch["id"]
        ctx.emit("charge.failed", ch)
    pi["status"] = "requires_payment_method"
    pi["last_payment_error"] = {
        "charge": charge_id,
        "code": error.code,
        "decline_code": error.decline_code,
        "doc_url": f"https://docs.stripe.com/error-codes/{(error.code or '').replace('_', '-')}",
        "message": error.message,
        "payment_method": ctx.render(pm),
        "type": "card_error",
    }
    ctx.emit("payment_intent.payment_failed", pi)
    if pi.get("_invoice"):
        from .invoicing import invoice_payment_attempt_failed

        invoice_payment_attempt_failed(ctx, pi)
    error.extra.update({"payment_intent": ctx.render(pi), "payment_method": ctx.render(pm)})
    if charge_id:
        error.extra["charge"] = charge_id
    return PaymentResult("failed", error)


def _outcome(decline: str | None) -> dict[str, Any]:
    if decline is None:
        return {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 32,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    return {
        "advice_code": "try_again_later" if decline == "generic_decline" else "do_not_try_again",
        "network_advice_code": None,
        "network_decline_code": None,
        "network_status": "declined_by_network",
        "reason": decline,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "The bank did not return any further details with this decline.",
        "type": "issuer_declined",
    }


def complete_authentication(ctx: Context, intent: dict[str, Any], succeed: bool = True) -> dict[str, Any]:
    """What the customer's bank page does for a `requires_action` intent: approve or refuse."""
    if intent["status"] != "requires_action":
        raise InvalidRequestError(f"{intent['id']} does not require action (status {intent['status']}).")
    pm = ctx.store.require("payment_method", intent["payment_method"])
    intent["next_action"] = None
    if intent["object"] == "setup_intent":
        if succeed:
            pm["_set_up"] = True
            _setup_succeeded(ctx, intent, pm)
        else:
            _setup_failed(ctx, intent, pm, _authentication_failure())
        return intent
    if succeed:
        _succeed(ctx, intent, pm)
    else:
        _fail(ctx, intent, pm, _authentication_failure(), charge=False)
    return intent


def _authentication_failure() -> CardError:
    return CardError(
        "We are unable to authenticate your payment method. Please choose a different payment method and try "
        "again.",
        code="payment_intent_authentication_failure",
    )


# ---------------------------------------------------------------------- SetupIntents
def confirm_setup_intent(
    ctx: Context, seti: dict[str, Any], pm: dict[str, Any], return_url: str | None
) -> PaymentResult:
    check_reusable(pm, seti["id"])
    seti["payment_method"] = pm["id"]
    seti["last_setup_error"] = None
    card = card_for_attempt(ctx, pm)
    if card.fails_on_attach or (card.decline_code and card != test_card(pm)):  # a forced decline
        error = card_error(card)
        _setup_failed(ctx, seti, pm, error)
        return PaymentResult("failed", error)
    if card.authentication:
        seti["status"] = "requires_action"
        seti["next_action"] = {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "return_url": return_url,
                "url": f"{ctx.base_url}/_emulator/authenticate/{seti['id']}",
            },
        }
        ctx.emit("setup_intent.requires_action", seti)
        return PaymentResult("requires_action")
    pm["_set_up"] = True
    _setup_succeeded(ctx, seti, pm)
    return PaymentResult("succeeded")


def _setup_succeeded(ctx: Context, seti: dict[str, Any], pm: dict[str, Any]) -> None:
    if seti["customer"] and not pm["customer"]:
        customer = ctx.store.get("customer", seti["customer"])
        if customer is not None:
            pm["customer"] = customer["id"]
            ctx.emit("payment_method.attached", pm)
    seti["status"] = "succeeded"
    ctx.emit("setup_intent.succeeded", seti)


def _setup_failed(ctx: Context, seti: dict[str, Any], pm: dict[str, Any], error: CardError) -> None:
    seti["status"] = "requires_payment_method"
    seti["last_setup_error"] = {
        "code": error.code,
        "decline_code": error.decline_code,
        "doc_url": f"https://docs.stripe.com/error-codes/{(error.code or '').replace('_', '-')}",
        "message": error.message,
        "payment_method": ctx.render(pm),
        "type": "card_error",
    }
    ctx.emit("setup_intent.setup_failed", seti)
    error.extra.update({"setup_intent": ctx.render(seti), "payment_method": ctx.render(pm)})


# ---------------------------------------------------------------------- refunds
def create_refund(
    ctx: Context, ch: dict[str, Any], amount: int | None, reason: str | None, metadata: dict[str, str] | None
) -> dict[str, Any]:
    if ch["status"] != "succeeded" or not ch["captured"]:
        raise InvalidRequestError(
            f"Charge {ch['id']} has not been captured or did not succeed.", param="charge"
        )
    if any(
        d["charge"] == ch["id"] and d["status"] not in ("warning_closed",) and not d["is_charge_refundable"]
        for d in ctx.store.all("dispute")
    ):
        raise InvalidRequestError(
            f"Charge {ch['id']} has been charged back; cannot issue a refund.",
            code="charge_disputed",
            param="charge",
        )
    released = ch.get("_released", 0)  # the uncaptured part of a partial capture
    remaining = ch["amount_captured"] - (ch["amount_refunded"] - released)
    if remaining <= 0:
        raise InvalidRequestError(
            f"Charge {ch['id']} has already been refunded.", code="charge_already_refunded", param="charge"
        )
    amount = remaining if amount is None else amount
    if amount <= 0:
        raise InvalidRequestError(
            "Refund amount must be positive.", code="parameter_invalid_integer", param="amount"
        )
    if amount > remaining:
        raise InvalidRequestError(
            f"Refund amount ({_money(amount, ch['currency'])}) is greater than unrefunded amount on charge "
            f"({_money(remaining, ch['currency'])})",
            code="amount_too_large",
            param="amount",
        )
    now = ctx.now(ch)
    refund = objects.refund(ctx.store.new_id("refund"), now, ch, amount)
    refund["reason"] = reason
    refund["metadata"] = metadata or {}
    txn = objects.balance_transaction(
        ctx.store.new_id("balance_transaction"), now, -amount, ch["currency"], 0, refund["id"], "refund", None
    )
    ctx.store.add("balance_transaction", txn)
    refund["balance_transaction"] = txn["id"]
    ctx.store.add("refund", refund)
    before = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", ch, before)
    return refund


def _money(amount: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, "")
    return f"{symbol}{amount / 100:.2f}"

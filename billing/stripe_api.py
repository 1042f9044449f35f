"""The only module that imports `stripe`: one function per Stripe call.

Every call passes our API key and the pinned API version, takes an idempotency key derived
from our own row (never random, so a retried Celery task reuses it), and turns Stripe's errors
into our own: a card error becomes `PaymentFailed` (402, with the decline code), a rate limit,
connection failure or Stripe-side 5xx becomes `StripeUnavailable` (503). Logs carry the
status, type, code and param of an error, never card data or keys.

The module-level stripe-python API is used (not `StripeClient`) because dj-stripe uses it
too: one `stripe.api_base` / `stripe.default_http_client` serves both, which is how tests put
the in-process emulator under everything.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import stripe
from django.conf import settings

from config.exceptions import ApplicationError

from .exceptions import PaymentFailed, StripeRateLimited, StripeUnavailable

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class StripeRequestError(ApplicationError):
    """Stripe refused the request as invalid (a bug or stale data on our side)."""

    code = "stripe_error"
    status = 502
    default_message = "The payment processor refused the request."


# --------------------------------------------------------------------------- the client
def http_client() -> stripe.HTTPClient:
    """The HTTP client every Stripe call goes through: `STRIPE_TIMEOUT_SECONDS` per attempt
    (connecting and each read), instead of stripe-python's 80 s."""
    return stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS)


def configure() -> None:
    """Install the client and the retry count (`STRIPE_MAX_NETWORK_RETRIES`): the one place both
    are set, at start-up (`BillingConfig.ready`). stripe-python retries connection errors,
    timeouts, 409 and 5xx with the same idempotency key (ours, or one it generates for a POST),
    so a retried charge is replayed by Stripe, never made twice."""
    stripe.default_http_client = http_client()
    stripe.max_network_retries = settings.STRIPE_MAX_NETWORK_RETRIES


def worst_case_seconds() -> float:
    """The longest a Stripe call can hold a request: every attempt timing out, plus stripe-python's
    back-off between attempts (0.5 s doubling, at most 5 s each). Kept below gunicorn's
    `WEB_TIMEOUT`, so a hanging Stripe answers 503 `stripe_unavailable` instead of a killed worker."""
    retries = settings.STRIPE_MAX_NETWORK_RETRIES
    backoff = sum(min(0.5 * 2 ** (n - 1), 5.0) for n in range(1, retries + 1))
    return (retries + 1) * settings.STRIPE_TIMEOUT_SECONDS + backoff


def request_options(idempotency_key: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "api_key": settings.STRIPE_SECRET_KEY,
        "stripe_version": settings.STRIPE_API_VERSION,
    }
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def translate_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map stripe-python exceptions onto the application's errors."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except stripe.CardError as exc:
            err = exc.error
            logger.info(
                "stripe card error in %s: status=%s code=%s decline_code=%s",
                func.__name__,
                exc.http_status,
                getattr(err, "code", None),
                getattr(err, "decline_code", None),
            )
            decline_code = getattr(err, "decline_code", None) or getattr(err, "code", None)
            extra = {"decline_code": decline_code, "stripe_code": getattr(err, "code", None)}
            intent = getattr(err, "payment_intent", None)
            if intent is not None:
                extra["payment_intent"] = intent.get("id") if hasattr(intent, "get") else intent
                if hasattr(intent, "get") and intent.get("client_secret"):
                    extra["client_secret"] = intent.get("client_secret")
            raise PaymentFailed(exc.user_message or "The card was declined.", extra=extra) from exc
        except stripe.RateLimitError as exc:
            headers = getattr(exc, "headers", None) or {}
            retry_after = headers.get("Retry-After") or headers.get("retry-after")
            logger.warning(
                "stripe unavailable in %s: RateLimitError (retry after %s)", func.__name__, retry_after
            )
            try:
                seconds = float(retry_after) if retry_after is not None else None
            except ValueError:
                seconds = None
            raise StripeRateLimited(retry_after=seconds) from exc
        except stripe.IdempotencyError as exc:
            # Our key with other parameters: the row the key derives from changed between two
            # attempts. Stripe refused, nothing was charged; a person must look.
            from config.alerts import ops_alert

            ops_alert(
                "stripe_idempotency_mismatch",
                f"Stripe refused {func.__name__}: an idempotency key was reused with other parameters",
                subject=func.__name__,
                every=60,
            )
            raise StripeRequestError(
                "The payment processor refused a repeated request with changed parameters.",
                extra={"stripe_code": "idempotency_error"},
            ) from exc
        except stripe.APIConnectionError as exc:
            logger.warning("stripe unavailable in %s: %s", func.__name__, type(exc).__name__)
            raise StripeUnavailable() from exc
        except stripe.StripeError as exc:
            err = exc.error
            logger.warning(
                "stripe error in %s: status=%s type=%s code=%s param=%s",
                func.__name__,
                exc.http_status,
                getattr(err, "type", None),
                getattr(err, "code", None),
                getattr(err, "param", None),
            )
            if exc.http_status is None or exc.http_status >= 500:
                raise StripeUnavailable() from exc
            raise StripeRequestError(
                getattr(err, "message", None) or "The payment processor refused the request.",
                extra={"stripe_code": getattr(err, "code", None), "param": getattr(err, "param", None)},
            ) from exc

    return wrapper


@translate_errors
def account_retrieve() -> dict[str, Any]:
    """Used by the health and set-up checks: proves the key and the host work."""
    return stripe.Account.retrieve(**request_options()).to_dict()


# --------------------------------------------------------------------------- customers
@translate_errors
def customer_create(
    *, organization_id: str, email: str, name: str, idempotency_key: str, test_clock: str | None = None
):
    extra = {"test_clock": test_clock} if test_clock else {}
    return stripe.Customer.create(
        email=email,
        name=name,
        metadata={"djstripe_subscriber": organization_id, "organization_id": organization_id},
        **extra,
        **request_options(idempotency_key),
    )


@translate_errors
def customer_retrieve(*, customer_id: str):
    return stripe.Customer.retrieve(customer_id, **request_options())


@translate_errors
def customer_update(*, customer_id: str, idempotency_key: str | None = None, **fields):
    return stripe.Customer.modify(customer_id, **fields, **request_options(idempotency_key))


@translate_errors
def customer_delete(*, customer_id: str):
    return stripe.Customer.delete(customer_id, **request_options())


# --------------------------------------------------------------------------- catalogue
@translate_errors
def product_retrieve_or_none(*, product_id: str):
    try:
        return stripe.Product.retrieve(product_id, **request_options())
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "resource_missing":
            return None
        raise


@translate_errors
def product_create(*, product_id: str, name: str, description: str, metadata: dict):
    return stripe.Product.create(
        id=product_id,
        name=name,
        description=description or None,
        metadata=metadata,
        **request_options(f"product:{product_id}:create"),
    )


@translate_errors
def product_update(*, product_id: str, **fields):
    return stripe.Product.modify(product_id, **fields, **request_options())


@translate_errors
def prices_by_lookup_keys(*, lookup_keys: list[str]) -> list:
    """Prices (active or not) carrying one of these lookup keys."""
    found = []
    for start in range(0, len(lookup_keys), 10):
        page = stripe.Price.list(lookup_keys=lookup_keys[start : start + 10], limit=100, **request_options())
        found.extend(page.auto_paging_iter())
    return found


@translate_errors
def price_create(
    *,
    product_id: str,
    unit_amount: int,
    currency: str,
    lookup_key: str,
    interval: str | None,
    metadata: dict,
    replaces: str | None = None,
):
    """A price that takes `lookup_key` over from the price it `replaces` (transfer_lookup_key).
    The idempotency key names both, so a rerun after a crash reuses it, and going back to an
    earlier amount later makes a new price instead of replaying the old one."""
    params: dict[str, Any] = {
        "product": product_id,
        "unit_amount": unit_amount,
        "currency": currency,
        "lookup_key": lookup_key,
        "transfer_lookup_key": True,
        "metadata": metadata,
    }
    if interval:
        params["recurring"] = {"interval": interval}
    key = f"price:{lookup_key}:{unit_amount}:{currency}:{interval or 'once'}:replaces:{replaces or '-'}"
    return stripe.Price.create(**params, **request_options(key))


@translate_errors
def metered_price_create(
    *,
    product_id: str,
    meter_id: str,
    unit_amount: int,
    currency: str,
    interval: str,
    lookup_key: str,
    metadata: dict,
    replaces: str | None = None,
):
    """A recurring metered price on a meter (billed in arrears), taking `lookup_key` over."""
    key = f"price:{lookup_key}:{unit_amount}:{currency}:{interval}:{meter_id}:replaces:{replaces or '-'}"
    return stripe.Price.create(
        product=product_id,
        unit_amount=unit_amount,
        currency=currency,
        lookup_key=lookup_key,
        transfer_lookup_key=True,
        recurring={"interval": interval, "usage_type": "metered", "meter": meter_id},
        metadata=metadata,
        **request_options(key),
    )  # fmt: skip


@translate_errors
def price_update(*, price_id: str, **fields):
    return stripe.Price.modify(price_id, **fields, **request_options())


@translate_errors
def price_retrieve(*, price_id: str):
    return stripe.Price.retrieve(price_id, **request_options())


# --------------------------------------------------------------------------- payment methods
@translate_errors
def setup_intent_create(*, customer_id: str, idempotency_key: str | None = None):
    return stripe.SetupIntent.create(
        customer=customer_id,
        usage="off_session",
        payment_method_types=["card"],
        **request_options(idempotency_key),
    )


@translate_errors
def payment_method_retrieve(*, payment_method_id: str):
    return stripe.PaymentMethod.retrieve(payment_method_id, **request_options())


@translate_errors
def payment_method_attach(*, payment_method_id: str, customer_id: str):
    """No key of ours: attaching is idempotent by nature (a card already on this customer is
    answered as it is), and a key derived from the card and customer would replay a first
    attach after the card was detached, hiding Stripe's refusal."""
    return stripe.PaymentMethod.attach(payment_method_id, customer=customer_id, **request_options())


@translate_errors
def payment_method_detach(*, payment_method_id: str):
    return stripe.PaymentMethod.detach(payment_method_id, **request_options())


@translate_errors
def payment_methods_list(*, customer_id: str) -> list:
    page = stripe.Customer.list_payment_methods(customer_id, type="card", limit=100, **request_options())
    return list(page.auto_paging_iter())


# --------------------------------------------------------------------------- subscriptions
@translate_errors
def subscription_create(
    *,
    customer_id: str,
    price_id: str,
    idempotency_key: str,
    payment_method_id: str | None = None,
    trial_days: int | None = None,
    metadata: dict | None = None,
    payment_behavior: str = "error_if_incomplete",
    metered_price_ids: list[str] | None = None,
):
    """The plan's price first (the item the rest of the code reads the plan from), then its
    metered prices (billed in arrears, no quantity)."""
    params: dict[str, Any] = {
        "customer": customer_id,
        "items": [{"price": price_id}] + [{"price": p} for p in metered_price_ids or []],
        "payment_behavior": payment_behavior,
        "metadata": metadata or {},
    }
    if payment_method_id:
        params["default_payment_method"] = payment_method_id
    if trial_days:
        params["trial_period_days"] = trial_days
    return stripe.Subscription.create(**params, **request_options(idempotency_key))


@translate_errors
def subscription_retrieve(*, subscription_id: str):
    return stripe.Subscription.retrieve(subscription_id, **request_options())


@translate_errors
def subscription_change_price(
    *,
    subscription_id: str,
    item_id: str,
    price_id: str,
    idempotency_key: str,
    proration_date: int | None = None,
    extra_items: list[dict] | None = None,
):
    """The plan's item to `price_id`, prorated; `extra_items` (metered items to add or delete,
    billed in arrears, so nothing to prorate) change in the same call."""
    extra = {"proration_date": proration_date} if proration_date is not None else {}
    return stripe.Subscription.modify(
        subscription_id,
        items=[{"id": item_id, "price": price_id}, *(extra_items or [])],
        proration_behavior="create_prorations",
        payment_behavior="error_if_incomplete",
        **extra,
        **request_options(idempotency_key),
    )


@translate_errors
def subscription_items_update(*, subscription_id: str, items: list[dict], idempotency_key: str):
    """Add or delete items without prorating (the metered items: billed in arrears)."""
    return stripe.Subscription.modify(
        subscription_id, items=items, proration_behavior="none", **request_options(idempotency_key)
    )


@translate_errors
def subscription_set_cancel_at_period_end(*, subscription_id: str, cancel: bool):
    return stripe.Subscription.modify(subscription_id, cancel_at_period_end=cancel, **request_options())


@translate_errors
def subscription_cancel(*, subscription_id: str):
    return stripe.Subscription.cancel(subscription_id, **request_options())


@translate_errors
def invoice_preview(
    *,
    customer_id: str,
    subscription_id: str | None = None,
    items: list[dict] | None = None,
    proration_date: int | None = None,
) -> dict[str, Any] | None:
    """The customer's (or its subscription's) next invoice as Stripe previews it
    (`POST /v1/invoices/create_preview`), after changing the subscription's `items` when given
    (prorated from `proration_date`, as `subscription_change_price` makes them). None when
    there is nothing to invoice. The one call for Stripe's preview: the upgrade page, the
    dashboard, the API and the billing summary all come through here."""
    params: dict[str, Any] = {"customer": customer_id}
    if subscription_id:
        params["subscription"] = subscription_id
    if items:
        details: dict[str, Any] = {"items": items, "proration_behavior": "create_prorations"}
        if proration_date is not None:
            details["proration_date"] = proration_date
        params["subscription_details"] = details
    try:
        return stripe.Invoice.create_preview(**params, **request_options()).to_dict()
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "invoice_upcoming_none":
            return None
        raise


# --------------------------------------------------------------------------- checkout and portal
@translate_errors
def checkout_session_create(*, idempotency_key: str | None = None, **params):
    return stripe.checkout.Session.create(**params, **request_options(idempotency_key))


@translate_errors
def checkout_session_retrieve(*, session_id: str, expand: list[str] | None = None):
    extra = {"expand": expand} if expand else {}
    return stripe.checkout.Session.retrieve(session_id, **extra, **request_options())


@translate_errors
def portal_session_create(*, customer_id: str, return_url: str):
    return stripe.billing_portal.Session.create(
        customer=customer_id, return_url=return_url, **request_options()
    )


# --------------------------------------------------------------------------- invoices and payments
@translate_errors
def invoice_retrieve(*, invoice_id: str):
    return stripe.Invoice.retrieve(invoice_id, **request_options())


@translate_errors
def invoice_retrieve_whole(*, invoice_id: str) -> dict[str, Any]:
    """An invoice as a plain dict with every line: Stripe embeds at most 10, the rest are paged
    from `GET /v1/invoices/{id}/lines`."""
    invoice = stripe.Invoice.retrieve(invoice_id, **request_options()).to_dict()
    lines = invoice.get("lines") or {}
    if lines.get("has_more"):
        page = stripe.Invoice.list_lines(invoice_id, limit=100, **request_options())
        lines["data"] = [line.to_dict() for line in page.auto_paging_iter()]
        lines["has_more"] = False
        invoice["lines"] = lines
    return invoice


@translate_errors
def invoices_list_for_customer(*, customer_id: str, created_gte: int | None = None) -> list[dict[str, Any]]:
    """Every invoice of a customer (newest first), as plain dicts; lines as Stripe embeds them."""
    params: dict[str, Any] = {"customer": customer_id, "limit": 100}
    if created_gte:
        params["created"] = {"gte": created_gte}
    page = stripe.Invoice.list(**params, **request_options())
    return [invoice.to_dict() for invoice in page.auto_paging_iter()]


@translate_errors
def invoice_create(
    *,
    customer_id: str,
    idempotency_key: str,
    description: str = "",
    currency: str | None = None,
    collection_method: str = "charge_automatically",
    days_until_due: int | None = None,
    metadata: dict | None = None,
) -> dict[str, Any]:
    """A draft invoice with no pending items pulled in (its items are added explicitly)."""
    params: dict[str, Any] = {
        "customer": customer_id,
        "collection_method": collection_method,
        "pending_invoice_items_behavior": "exclude",
        "auto_advance": False,
        "metadata": metadata or {},
    }
    if description:
        params["description"] = description
    if currency:
        params["currency"] = currency
    if days_until_due is not None:
        params["days_until_due"] = days_until_due
    return stripe.Invoice.create(**params, **request_options(idempotency_key)).to_dict()


@translate_errors
def invoice_item_create(
    *,
    customer_id: str,
    invoice_id: str,
    amount: int,
    currency: str,
    description: str,
    idempotency_key: str,
    metadata: dict | None = None,
) -> dict[str, Any]:
    return stripe.InvoiceItem.create(
        customer=customer_id,
        invoice=invoice_id,
        amount=amount,
        currency=currency,
        description=description,
        metadata=metadata or {},
        **request_options(idempotency_key),
    ).to_dict()


@translate_errors
def invoice_finalize(*, invoice_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
    return stripe.Invoice.finalize_invoice(
        invoice_id, auto_advance=False, **request_options(idempotency_key)
    ).to_dict()


@translate_errors
def invoice_void(*, invoice_id: str) -> dict[str, Any]:
    return stripe.Invoice.void_invoice(invoice_id, **request_options()).to_dict()


@translate_errors
def invoice_mark_uncollectible(*, invoice_id: str) -> dict[str, Any]:
    return stripe.Invoice.mark_uncollectible(invoice_id, **request_options()).to_dict()


@translate_errors
def payment_intent_create(
    *,
    customer_id: str,
    amount: int,
    currency: str,
    payment_method_id: str,
    idempotency_key: str,
    metadata: dict,
    description: str = "",
):
    """An off-session charge of a saved card, confirmed at once."""
    return stripe.PaymentIntent.create(
        customer=customer_id,
        amount=amount,
        currency=currency,
        payment_method=payment_method_id,
        off_session=True,
        confirm=True,
        metadata=metadata,
        description=description or None,
        **request_options(idempotency_key),
    )


@translate_errors
def payment_intent_retrieve(*, payment_intent_id: str):
    return stripe.PaymentIntent.retrieve(payment_intent_id, **request_options())


# --------------------------------------------------------------------------- webhooks
@translate_errors
def webhook_endpoint_create(*, url: str, enabled_events: list[str], metadata: dict | None = None):
    return stripe.WebhookEndpoint.create(
        url=url,
        enabled_events=enabled_events,
        api_version=settings.STRIPE_API_VERSION,
        metadata=metadata or {},
        **request_options(),
    )


@translate_errors
def webhook_endpoints_list() -> list:
    """Every webhook endpoint of the account."""
    return list(stripe.WebhookEndpoint.list(limit=100, **request_options()).auto_paging_iter())


@translate_errors
def webhook_endpoint_delete(*, endpoint_id: str) -> None:
    stripe.WebhookEndpoint.delete(endpoint_id, **request_options())


@translate_errors
def customer_exists(*, customer_id: str) -> bool:
    try:
        customer = stripe.Customer.retrieve(customer_id, **request_options())
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "resource_missing":
            return False
        raise
    return not customer.get("deleted", False)


# --------------------------------------------------------------------------- test clocks (demo history)
@translate_errors
def test_clock_create(*, frozen_time: int, name: str, idempotency_key: str):
    return stripe.test_helpers.TestClock.create(
        frozen_time=frozen_time, name=name, **request_options(idempotency_key)
    )


@translate_errors
def test_clock_advance(*, clock_id: str, frozen_time: int):
    return stripe.test_helpers.TestClock.advance(clock_id, frozen_time=frozen_time, **request_options())


@translate_errors
def test_clock_retrieve(*, clock_id: str):
    return stripe.test_helpers.TestClock.retrieve(clock_id, **request_options())


@translate_errors
def events_list_all() -> list[dict[str, Any]]:
    """Every event Stripe still holds, oldest first."""
    events = stripe.Event.list(limit=100, **request_options()).auto_paging_iter()
    return [e.to_dict(for_json=True) for e in events][::-1]


@translate_errors
def invoices_list(*, subscription_id: str, status: str | None = None, limit: int = 3) -> list:
    params: dict[str, Any] = {"subscription": subscription_id, "limit": limit}
    if status:
        params["status"] = status
    return list(stripe.Invoice.list(**params, **request_options()).data)


@translate_errors
def payment_intents_search(*, query: str, limit: int = 10) -> list:
    return list(stripe.PaymentIntent.search(query=query, limit=limit, **request_options()).data)


@translate_errors
def webhook_endpoint_exists(*, endpoint_id: str) -> bool:
    try:
        endpoint = stripe.WebhookEndpoint.retrieve(endpoint_id, **request_options())
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "code", None) == "resource_missing":
            return False
        raise
    return endpoint.get("status") == "enabled"


# --------------------------------------------------------------------------- billing meters
@translate_errors
def meters_list() -> list:
    return list(stripe.billing.Meter.list(limit=100, **request_options()).auto_paging_iter())


@translate_errors
def meter_create(*, event_name: str, display_name: str, formula: str = "sum"):
    """A meter summing `value` per customer (`stripe_customer_id` in the payload)."""
    return stripe.billing.Meter.create(
        display_name=display_name,
        event_name=event_name,
        default_aggregation={"formula": formula},
        customer_mapping={"event_payload_key": "stripe_customer_id", "type": "by_id"},
        value_settings={"event_payload_key": "value"},
        **request_options(f"meter:{event_name}:create"),
    )


class MeterEventDuplicate(Exception):
    """Stripe already has a meter event with this identifier (a replay): nothing was recorded."""


@translate_errors
def meter_event_create(*, event_name: str, customer_id: str, value: int, identifier: str, timestamp: int):
    """One meter event. The identifier is ours, derived from what the event counts, so a resend
    is refused by Stripe as a duplicate (`MeterEventDuplicate`) instead of being counted twice."""
    try:
        return stripe.billing.MeterEvent.create(
            event_name=event_name,
            payload={"stripe_customer_id": customer_id, "value": str(value)},
            identifier=identifier,
            timestamp=timestamp,
            **request_options(f"meter_event:{identifier}"),
        )
    except stripe.InvalidRequestError as exc:
        if "already exists" in str(getattr(exc.error, "message", "") or exc) and (
            getattr(exc.error, "param", None) in (None, "identifier")
        ):
            raise MeterEventDuplicate(identifier) from exc
        raise


@translate_errors
def meter_event_summary_total(*, meter_id: str, customer_id: str, start_time: int, end_time: int) -> int:
    """What the meter aggregated for the customer over [start_time, end_time) (minute-aligned)."""
    page = stripe.billing.Meter.list_event_summaries(
        meter_id, customer=customer_id, start_time=start_time, end_time=end_time, **request_options()
    )
    return int(sum(int(item.get("aggregated_value") or 0) for item in page.auto_paging_iter()))


# --------------------------------------------------------------------------- refunds (back office)
@translate_errors
def refund_create(*, payment_intent_id: str, amount: int | None, idempotency_key: str, metadata: dict):
    """Refund a PaymentIntent's charge, all of what is left (`amount=None`) or part of it."""
    params: dict[str, Any] = {"payment_intent": payment_intent_id, "metadata": metadata}
    if amount is not None:
        params["amount"] = amount
    return stripe.Refund.create(**params, **request_options(idempotency_key))


@translate_errors
def charge_retrieve(*, charge_id: str):
    return stripe.Charge.retrieve(charge_id, **request_options())

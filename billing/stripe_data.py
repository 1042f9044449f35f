"""The one place that knows the shapes of Stripe payloads (API version 2026-08-26.dahlia).

Webhook events, dj-stripe's `stripe_data` and the answers of `stripe_api` are plain dicts;
everything that reads an id, a timestamp or a period out of them goes through here, so a
change of shape in a new API version is made once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def object_id(value: Any) -> str | None:
    """The id of an expandable field: Stripe sends either the id or the expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value or None


def event_object(event: Any) -> dict:
    """The object a webhook event carries (a dj-stripe `Event` or a plain event dict)."""
    data = event.get("data") if isinstance(event, dict) else getattr(event, "data", None)
    return (data or {}).get("object") or {}


def timestamp(value: int | None) -> datetime | None:
    """A Stripe Unix timestamp as an aware datetime (None and 0 stay None)."""
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def subscription_items(subscription: dict) -> list[dict]:
    return (subscription.get("items") or {}).get("data") or []


def subscription_price_id(subscription: dict) -> str | None:
    """The price of the subscription's first item (the plan's price)."""
    items = subscription_items(subscription)
    return object_id(items[0].get("price")) if items else None


def subscription_period(subscription: dict) -> tuple[datetime | None, datetime | None]:
    """The current period's bounds. Since 2025-03-31 they live on the items; the
    subscription-level fields are read only when no item carries them."""
    items = subscription_items(subscription)
    first = items[0] if items else {}
    start = first.get("current_period_start") or subscription.get("current_period_start")
    end = first.get("current_period_end") or subscription.get("current_period_end")
    return timestamp(start), timestamp(end)


def default_payment_method_id(customer: dict) -> str | None:
    """The customer's default card for invoices and subscriptions."""
    return object_id((customer.get("invoice_settings") or {}).get("default_payment_method"))


def invoice_subscription_id(invoice: dict) -> str | None:
    """The subscription an invoice bills, from `parent.subscription_details` (Stripe removed the
    top-level `subscription` field in 2025-03-31.basil)."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    return object_id(details.get("subscription"))


def invoice_line_price_id(line: dict) -> str | None:
    """The price an invoice line bills (`pricing.price_details.price` in current versions)."""
    details = (line.get("pricing") or {}).get("price_details") or {}
    return object_id(details.get("price")) or object_id(line.get("price"))


def invoice_line_is_subscription_period(line: dict) -> bool:
    """A line that bills a subscription item's period (not a proration, not a one-off item)."""
    details = (line.get("parent") or {}).get("subscription_item_details") or {}
    return bool(details) and not details.get("proration")


def invoice_line_is_proration(line: dict) -> bool:
    """A proration line (credit for unused time, charge for the remaining time of a change)."""
    parent = line.get("parent") or {}
    details = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    return bool(details.get("proration"))


def line_period(line: dict) -> tuple[datetime | None, datetime | None]:
    period = line.get("period") or {}
    return timestamp(period.get("start")), timestamp(period.get("end"))


def card_summary(payment_method: dict) -> dict:
    """Brand, last four digits and expiry of a card PaymentMethod (never more of the card)."""
    card = payment_method.get("card") or {}
    return {
        "brand": card.get("brand", ""),
        "last4": card.get("last4", ""),
        "exp_month": card.get("exp_month"),
        "exp_year": card.get("exp_year"),
    }

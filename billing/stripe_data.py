"""The one place that knows the shapes of Stripe payloads (API version 2026-08-26.dahlia).

Webhook events, dj-stripe's `stripe_data` and the answers of `stripe_api` are plain dicts;
everything that reads an id, a timestamp or a period out of them goes through here, so a
change of shape in a new API version is made once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
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


# --------------------------------------------------------------------------- invoices, whole
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")


def invoice_lines(invoice: dict) -> tuple[list[dict], bool]:
    """The lines an invoice payload carries, and whether they are all of them (Stripe embeds at
    most 10 and sets `lines.has_more`; `stripe_api.invoice_retrieve_whole` pages the rest)."""
    lines = invoice.get("lines") or {}
    return list(lines.get("data") or []), not lines.get("has_more")


def invoice_status_times(invoice: dict) -> dict[str, datetime | None]:
    """When the invoice was finalized, paid, voided and marked uncollectible."""
    transitions = invoice.get("status_transitions") or {}
    return {
        "finalized_at": timestamp(transitions.get("finalized_at")),
        "paid_at": timestamp(transitions.get("paid_at")),
        "voided_at": timestamp(transitions.get("voided_at")),
        "marked_uncollectible_at": timestamp(transitions.get("marked_uncollectible_at")),
    }


def invoice_tax_lines(invoice: dict) -> list[dict]:
    """The tax lines Stripe computed (`total_taxes`, since 2025-03-31): amount in minor units and
    a label (the tax rate's display name when expanded, else the taxability reason)."""
    out = []
    for tax in invoice.get("total_taxes") or []:
        details = tax.get("tax_rate_details") or {}
        rate = details.get("tax_rate")
        label = (rate.get("display_name") if isinstance(rate, dict) else None) or (
            tax.get("taxability_reason") or "Tax"
        ).replace("_", " ")
        out.append({"description": label, "amount": int(tax.get("amount") or 0)})
    return out


def invoice_amounts(invoice: dict) -> dict[str, int]:
    """Subtotal, tax, total, due, paid and remaining in minor units."""
    total = int(invoice.get("total") or 0)
    excluding = invoice.get("total_excluding_tax")
    tax = sum(t["amount"] for t in invoice_tax_lines(invoice))
    if not tax and excluding is not None:
        tax = total - int(excluding)
    return {
        "subtotal": int(invoice.get("subtotal") or 0),
        "tax": tax,
        "total": total,
        "amount_due": int(invoice.get("amount_due") or 0),
        "amount_paid": int(invoice.get("amount_paid") or 0),
        "amount_remaining": int(invoice.get("amount_remaining") or 0),
    }


def invoice_period(invoice: dict) -> tuple[datetime | None, datetime | None]:
    """The period an invoice bills: the span of its lines' periods when it has lines (a renewal
    invoice's own `period_start/end` is the period behind it), else its own fields."""
    lines, _ = invoice_lines(invoice)
    starts = [(line.get("period") or {}).get("start") for line in lines]
    ends = [(line.get("period") or {}).get("end") for line in lines]
    starts, ends = [s for s in starts if s], [e for e in ends if e]
    if starts and ends:
        return timestamp(min(starts)), timestamp(max(ends))
    return timestamp(invoice.get("period_start")), timestamp(invoice.get("period_end"))


def invoice_line_kind(line: dict) -> str:
    """`subscription` (a period of a subscription item), `proration`, or `invoice_item`."""
    parent = line.get("parent") or {}
    sub_details = parent.get("subscription_item_details") or {}
    item_details = parent.get("invoice_item_details") or {}
    if sub_details:
        return "proration" if sub_details.get("proration") else "subscription"
    if item_details.get("proration"):
        return "proration"
    return "invoice_item"


def invoice_line_quantity(line: dict) -> Decimal | None:
    """The line's quantity as a Decimal (`quantity_decimal` when given)."""
    value = line.get("quantity_decimal")
    if value in (None, ""):
        value = line.get("quantity")
    return Decimal(str(value)) if value is not None else None


def invoice_preview_date(preview: dict) -> datetime | None:
    """When the previewed invoice will be charged (its next payment attempt), else its period end."""
    return timestamp(preview.get("next_payment_attempt")) or timestamp(preview.get("period_end"))

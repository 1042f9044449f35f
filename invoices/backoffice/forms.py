"""Forms of the back-office actions: each is the action's confirmation page, with the reason
field (required where money or credits move) and plain-language help for non-engineer staff."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django import forms

REASON_HELP_REQUIRED = "Required: why, in a sentence. It is kept in the audit log with your name."
REASON_HELP_OPTIONAL = "Optional: why. It is kept in the audit log with your name."


def reason_field(*, required: bool) -> forms.CharField:
    return forms.CharField(
        required=required,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=REASON_HELP_REQUIRED if required else REASON_HELP_OPTIONAL,
    )


class IdempotentForm(forms.Form):
    """A hidden key made when the page is shown: submitting the page twice acts once."""

    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("idempotency_key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)


class CreditsGrantForm(IdempotentForm):
    amount = forms.DecimalField(
        label="Credits to grant",
        max_digits=20,
        decimal_places=4,
        min_value=Decimal("0.0001"),
        max_value=Decimal("1000000000"),
        help_text="Added to the balance as a manual grant. Example: 500.",
    )
    expires_at = forms.DateTimeField(
        label="Expires at (optional)",
        required=False,
        help_text="Leave empty for credits that never expire. Format: 2026-12-31 23:59.",
    )
    reason = reason_field(required=True)


class CreditsAdjustForm(IdempotentForm):
    amount = forms.DecimalField(
        label="Change to the balance",
        max_digits=20,
        decimal_places=4,
        min_value=Decimal("-1000000000"),
        max_value=Decimal("1000000000"),
        help_text="Positive adds credits, negative takes them away (never below the overdraft limit). "
        "Example: -250.",
    )
    reason = reason_field(required=True)

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Must not be zero.")
        return amount


class SubscriptionCancelForm(forms.Form):
    when = forms.ChoiceField(
        label="When",
        choices=[
            ("period_end", "At the end of the paid period (it can be resumed until then)"),
            ("now", "Now (service stops at once; no refund is made by this action)"),
        ],
        initial="period_end",
        widget=forms.RadioSelect,
    )
    reason = reason_field(required=True)


class SubscriptionResumeForm(forms.Form):
    reason = reason_field(required=False)


class PaymentRefundForm(IdempotentForm):
    payment_intent = forms.ChoiceField(
        label="Payment", help_text="The organization's payments that can be refunded."
    )
    amount = forms.DecimalField(
        label="Amount to refund (optional)",
        required=False,
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text="In the payment's currency, e.g. 12.50. Leave empty to refund all that is left. "
        "Credits bought with the payment are taken back in proportion (only what is unspent).",
    )
    reason = reason_field(required=True)

    def __init__(self, *args, payments: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payment_intent"].choices = [
            (
                p["payment_intent"],
                f"{p['created']:%Y-%m-%d} · {p['payment_intent']} · "
                f"{(p['amount'] - p['amount_refunded']) / 100:.2f} {p['currency'].upper()} refundable"
                f"{' · ' + p['description'] if p['description'] else ''}",
            )
            for p in payments
        ]

    def amount_minor(self) -> int | None:
        amount = self.cleaned_data.get("amount")
        return None if amount is None else int(amount * 100)


class InvoiceResendForm(forms.Form):
    email = forms.EmailField(
        required=False,
        max_length=254,
        help_text="Leave empty to send to the organization's billing contacts.",
    )
    reason = reason_field(required=False)


class JobRunForm(forms.Form):
    reason = reason_field(required=False)

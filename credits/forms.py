"""Forms of the credits pages: labels, validation and error messages for people; the services
validate again (they are what the API calls too)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone

from config.inputs import StrictDecimalFormField, StrictIntegerFormField

from .models import TransactionKind
from .selectors import credit_pack_list


class TransactionFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label="Kind", required=False, choices=[("", "All kinds"), *TransactionKind.choices]
    )
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        label="To (inclusive)", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The end date must not be before the start date.")
        return data

    def selector_filters(self) -> dict:
        """The filters of `credit_transaction_list`: whole days in the current time zone, `end`
        inclusive here (exclusive for the selector)."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()
        out: dict = {"kind": data.get("kind") or None}
        if data.get("start"):
            out["start"] = datetime.combine(data["start"], time.min, tzinfo=zone)
        if data.get("end"):
            out["end"] = datetime.combine(data["end"] + timedelta(days=1), time.min, tzinfo=zone)
        return out


def _pack_choices():
    return [(pack.code, pack.name) for pack in credit_pack_list()]


class AutoRefillForm(forms.Form):
    prefix = "refill"
    enabled = forms.BooleanField(label="Refill automatically", required=False)
    threshold = StrictDecimalFormField(
        label="When the balance falls below",
        min_value=Decimal(0),
        max_digits=20,
        decimal_places=4,
        help_text="Credits.",
    )
    pack = forms.ChoiceField(label="Buy this pack", choices=_pack_choices)
    max_refills_per_day = StrictIntegerFormField(
        label="At most this many refills a day", min_value=1, max_value=24, initial=3
    )


class LowBalanceForm(forms.Form):
    prefix = "low"
    threshold = StrictDecimalFormField(
        label="Warn me when the balance falls below",
        required=False,
        min_value=Decimal(0),
        max_digits=20,
        decimal_places=4,
        help_text="Credits; leave empty to turn the e-mail off.",
    )

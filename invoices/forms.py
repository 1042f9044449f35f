"""Forms of the invoice pages: the list's filters, with labels and errors for people; the
selector and the API take the same filters (`GET /invoices?status=&kind=&start=&end=`)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from .models import InvoiceKind, InvoiceStatus

# Drafts never reach the tenant's list (a draft statement is not issued yet).
STATUS_CHOICES = [("", "All statuses"), *((v, label) for v, label in InvoiceStatus.choices if v != "draft")]


class InvoiceFilterForm(forms.Form):
    status = forms.ChoiceField(label="Status", required=False, choices=STATUS_CHOICES)
    kind = forms.ChoiceField(
        label="Kind", required=False, choices=[("", "Invoices and statements"), *InvoiceKind.choices]
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
        """The filters of `invoice_list`: whole days in the current time zone, `end` inclusive
        here (exclusive for the selector)."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()
        out: dict = {"status": data.get("status") or None, "kind": data.get("kind") or None}
        if data.get("start"):
            out["start"] = datetime.combine(data["start"], time.min, tzinfo=zone)
        if data.get("end"):
            out["end"] = datetime.combine(data["end"] + timedelta(days=1), time.min, tzinfo=zone)
        return out

    def query(self, **extra) -> str:
        """The filters as a query string (for the pager's links), with `extra` on top."""
        from urllib.parse import urlencode

        params = {k: v for k, v in (self.data or {}).items() if k in self.fields and v}
        params.update({k: v for k, v in extra.items() if v})
        return urlencode(params)

"""Tenant pages of the credits app (`/billing/<org>/credits/`): the balance by source with the next
expiries, buying a pack (off-session with the saved card, or on Stripe Checkout), auto-refill and
low-balance settings, and the ledger with filters and a CSV export. Also the dashboard's credits
panel and alerts, registered in `billing.pages` by `CreditsConfig.ready()`.

Everything is read through `credits.selectors` and written through `credits.services`, as the API
does; a refused write becomes an error on the page."""

from __future__ import annotations

import csv
import uuid

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats
from django.views.decorators.http import require_GET, require_POST

from billing.access import Action
from billing.pages import Alert, Page, organization_page, shell_context
from billing.selectors import payment_method_list
from billing.templatetags.money import format_credits
from config.exceptions import ApplicationError

from .formatting import credits_str
from .forms import AutoRefillForm, LowBalanceForm, TransactionFilterForm
from .selectors import credit_daily_totals, credit_pack_list, credit_summary_get, credit_transaction_list
from .services import (
    auto_refill_set,
    credit_account_settings_update,
    credit_pack_checkout_session_create,
    credit_pack_purchase,
)

PAGE_SIZE = 25
SOURCE_LABELS = {
    "purchased": "Purchased",
    "subscription": "Included with the plan",
    "promo": "Promotional",
    "manual": "Granted by us",
    "refund": "Refunded usage",
}


def _credits_url(page: Page, **query) -> str:
    url = reverse("credits-page", args=[page.organization.pk])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def _error_text(exc: ApplicationError) -> str:
    fields = (exc.extra or {}).get("fields") or {}
    details = " ".join(" ".join(map(str, msgs)) for msgs in fields.values())
    return details or exc.message


def _daily_points(organization) -> list[dict]:
    return [
        {"label": formats.date_format(row.day, "M j"), "value": row.consumed}
        for row in credit_daily_totals(organization=organization, days=30)
    ]


def _balance_context(organization) -> dict:
    summary = credit_summary_get(organization=organization)
    return {
        "summary": summary,
        "sources": [
            {"key": key, "label": SOURCE_LABELS.get(key, key.title()), "amount": amount}
            for key, amount in summary.by_source.items()
        ],
    }


def _filters(request) -> tuple[TransactionFilterForm, dict]:
    form = TransactionFilterForm(request.GET or None)
    if form.is_bound and form.is_valid():
        return form, form.selector_filters()
    return form, {}


@organization_page()
@require_GET
def credits_page(request, page: Page):
    organization = page.organization
    if request.GET.get("checkout") == "success":
        messages.success(request, "Thank you: the credits are added as soon as Stripe confirms the payment.")
    elif request.GET.get("checkout") == "canceled":
        messages.info(request, "Checkout was canceled; nothing was charged.")
    form, filters = _filters(request)
    transactions = Paginator(
        credit_transaction_list(organization=organization, **filters).select_related("grant"), PAGE_SIZE
    ).get_page(request.GET.get("page"))
    if request.htmx and request.htmx.target == "transactions":
        return render(
            request,
            "credits/partials/transactions.html",
            {"organization": organization, "form": form, "transactions": transactions},
        )
    context = {
        **shell_context(page, active="credits", title="Credits"),
        **_balance_context(organization),
        "packs": list(credit_pack_list()),
        "daily": _daily_points(organization),
        "default_card": next(
            (c for c in payment_method_list(organization=organization) if c["is_default"]), None
        ),
        "purchase_key": uuid.uuid4().hex,  # one purchase per rendered form, however often it is sent
        "form": form,
        "transactions": transactions,
        "export_query": request.GET.urlencode(),
        **_settings_forms(page),
    }
    return render(request, "credits/credits.html", context)


def _settings_forms(page: Page, refill_form=None, low_balance_form=None) -> dict:
    summary = credit_summary_get(organization=page.organization)
    refill = summary.auto_refill
    if refill_form is None:
        refill_form = AutoRefillForm(
            initial={
                "enabled": bool(refill and refill.enabled),
                "threshold": credits_str(refill.threshold) if refill else None,
                "pack": refill.pack.code if refill and refill.pack_id else None,
                "max_refills_per_day": refill.max_refills_per_day if refill else 3,
            }
        )
    if low_balance_form is None:
        low_balance_form = LowBalanceForm(initial={"threshold": credits_str(summary.low_balance_threshold)})
    return {"refill": refill, "refill_form": refill_form, "low_balance_form": low_balance_form}


@organization_page(Action.PAY)
@require_POST
def credits_buy(request, page: Page):
    """Buy a pack with the saved default card, off-session. The form's key makes a resent form
    (a double click, a reload) answer the same purchase instead of charging twice."""
    key = request.POST.get("idempotency_key", "")[:200] or uuid.uuid4().hex
    try:
        result = credit_pack_purchase(
            organization=page.organization,
            pack=request.POST.get("pack", ""),
            idempotency_key=f"page:{key}",
        )
    except ApplicationError as exc:
        messages.error(request, f"The purchase did not go through: {_error_text(exc)}")
        return redirect(_credits_url(page))
    purchase = result.outcome.purchase
    balance = credit_summary_get(organization=page.organization).balance
    if result.outcome.transaction is not None:
        messages.success(
            request,
            f"{format_credits(purchase.credits)} credits were added. "
            f"Your balance is {format_credits(balance)} credits.",
        )
    elif purchase.status == "requires_action":
        messages.warning(
            request,
            "Your bank wants to confirm this payment. Nothing was charged: buy the pack on Stripe's "
            "page instead, where you can confirm it.",
        )
    else:
        messages.info(request, "The payment is processing; the credits are added once it succeeds.")
    return redirect(_credits_url(page))


@organization_page(Action.PAY)
@require_POST
def credits_buy_checkout(request, page: Page):
    try:
        session = credit_pack_checkout_session_create(
            organization=page.organization,
            pack=request.POST.get("pack", ""),
            success_url=page.url("credits-page", query={"checkout": "success"}),
            cancel_url=page.url("credits-page", query={"checkout": "canceled"}),
        )
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
        return redirect(_credits_url(page))
    return redirect(session["url"])


def _settings_error(request, page: Page, form, exc: ApplicationError, which: str):
    fields = (exc.extra or {}).get("fields") or {}
    placed = False
    for name, errors in fields.items():
        target = name if name in form.fields else None
        for error in errors:
            form.add_error(target, str(error))
            placed = True
    if not placed:
        form.add_error(None, exc.message)
    return _render_with_forms(request, page, **{which: form})


def _render_with_forms(request, page: Page, **forms):
    form, filters = _filters(request)
    transactions = Paginator(
        credit_transaction_list(organization=page.organization, **filters).select_related("grant"), PAGE_SIZE
    ).get_page(1)
    context = {
        **shell_context(page, active="credits", title="Credits"),
        **_balance_context(page.organization),
        "packs": list(credit_pack_list()),
        "daily": _daily_points(page.organization),
        "default_card": next(
            (c for c in payment_method_list(organization=page.organization) if c["is_default"]), None
        ),
        "purchase_key": uuid.uuid4().hex,
        "form": form,
        "transactions": transactions,
        "export_query": "",
        **_settings_forms(page, **forms),
    }
    messages.error(request, "Please correct the settings below.")
    return render(request, "credits/credits.html", context, status=400)


@organization_page(Action.PAY)
@require_POST
def auto_refill_update(request, page: Page):
    form = AutoRefillForm(request.POST)
    if not form.is_valid():
        return _render_with_forms(request, page, refill_form=form)
    data = form.cleaned_data
    try:
        auto_refill_set(
            organization=page.organization,
            enabled=data["enabled"],
            threshold=data["threshold"],
            pack=data["pack"],
            max_refills_per_day=data["max_refills_per_day"],
        )
    except ApplicationError as exc:
        return _settings_error(request, page, form, exc, "refill_form")
    messages.success(request, "Auto-refill is on." if data["enabled"] else "Auto-refill is off.")
    return redirect(_credits_url(page))


@organization_page(Action.PAY)
@require_POST
def low_balance_update(request, page: Page):
    form = LowBalanceForm(request.POST)
    if not form.is_valid():
        return _render_with_forms(request, page, low_balance_form=form)
    try:
        credit_account_settings_update(
            organization=page.organization, low_balance_threshold=form.cleaned_data["threshold"]
        )
    except ApplicationError as exc:
        return _settings_error(request, page, form, exc, "low_balance_form")
    threshold = form.cleaned_data["threshold"]
    messages.success(
        request,
        "Low-balance e-mails are off."
        if threshold is None
        else f"You will get an e-mail when the balance falls below {format_credits(threshold)} credits.",
    )
    return redirect(_credits_url(page))


class _Echo:
    def write(self, value):
        return value


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """Free text in a CSV cell that a spreadsheet would run as a formula gets a leading quote."""
    text = str(text or "")
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


@organization_page()
@require_GET
def credits_transactions_csv(request, page: Page):
    """The ledger with the page's filters as CSV (streamed; amounts as exact decimal strings)."""
    form, filters = _filters(request)
    if form.is_bound and not form.is_valid():
        errors = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
        return HttpResponseBadRequest(f"Invalid filters: {errors}", content_type="text/plain")
    rows = credit_transaction_list(organization=page.organization, **filters).select_related("grant")
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(
            ["created_at", "kind", "amount", "balance_after", "source", "reason", "event_name", "actor", "id"]
        )
        for row in rows.iterator(chunk_size=500):
            yield writer.writerow(
                [
                    row.created_at.isoformat(),
                    row.kind,
                    credits_str(row.amount),
                    credits_str(row.balance_after),
                    row.grant.source if row.grant_id else "",
                    _cell(row.reason),
                    _cell(row.event_name),
                    _cell(row.actor),
                    str(row.pk),
                ]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="credits-{page.organization.pk}.csv"'
    return response


# --------------------------------------------------------------------------- dashboard
def credits_panel(page: Page) -> str:
    context = {
        "organization": page.organization,
        "can_pay": page.can_pay,
        **_balance_context(page.organization),
    }
    return render_to_string("credits/panels/credits.html", context, request=page.request)


def credits_alerts(page: Page):
    summary = credit_summary_get(organization=page.organization)
    url = reverse("credits-page", args=[page.organization.pk])
    if summary.low_balance:
        yield Alert(
            "low-balance",
            "warning",
            f"Your available credits ({format_credits(summary.available)}"
            + (f", with {format_credits(summary.held)} held for work in progress" if summary.held else "")
            + f") are below your alert threshold "
            f"({format_credits(summary.low_balance_threshold)}).",
            "Buy credits" if page.can_pay else "See credits",
            url,
        )
    refill = summary.auto_refill
    if refill is not None and not refill.enabled and refill.disabled_reason:
        yield Alert(
            "auto-refill", "warning", f"Auto-refill was turned off: {refill.disabled_reason}", "Review", url
        )

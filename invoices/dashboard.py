"""The staff dashboard (`/admin/dashboard/`, linked first from the admin index): the business at a
glance, each figure linking to the admin list behind it. Staff only: a signed-in tenant gets 403,
a request carrying an API key (organization or platform) gets 403 (pages are for people), and an
anonymous visitor is sent to the admin login."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from .analytics import staff_dashboard_get


def last_reconcile():
    """The last finished reconcile run (`credits.selectors.latest_reconcile_run`, from the back
    office), or None before the first or where that selector does not exist yet."""
    from credits import selectors

    latest = getattr(selectors, "latest_reconcile_run", None)
    return latest() if latest is not None else None


def admin_list(name: str, **filters) -> str | None:
    """The admin changelist `app_model` with filters, or None when that admin is not installed."""
    try:
        url = reverse(f"admin:{name}_changelist")
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode(filters)}" if filters else url


def admin_change(name: str, pk) -> str | None:
    try:
        return reverse(f"admin:{name}_change", args=[pk])
    except NoReverseMatch:
        return None


def staff_dashboard(request):
    if request.headers.get("Authorization"):
        raise PermissionDenied("The staff dashboard is for signed-in staff, not API keys.")
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    if not (request.user.is_active and request.user.is_staff):
        raise PermissionDenied("The staff dashboard is for staff.")
    board = staff_dashboard_get()
    # The month's first instant with its offset: a bare date is a naive datetime to the admin's filter.
    month = {"created_at__gte": board.month_start.isoformat()}
    chart = [{"label": first.strftime("%b %Y"), "value": amount / 100} for first, amount in board.mrr_series]
    plans = [
        {
            "row": row,
            "url": admin_list("djstripe_subscription", status=row.status, plan=row.plan),
        }
        for row in board.subscriptions
    ]
    leaders = [
        {**leader, "url": admin_change("billing_organization", leader["organization_id"])}
        for leader in board.usage.leaders
    ]
    failed = [
        {"invoice": invoice, "url": admin_change("invoices_invoice", invoice.pk)}
        for invoice in board.failed_payments
    ]
    disputes = [{"dispute": d, "url": admin_change("djstripe_dispute", d.pk)} for d in board.open_disputes]
    links = {
        "subscriptions_active": admin_list("djstripe_subscription", status="active"),
        "subscriptions_trialing": admin_list("djstripe_subscription", status="trialing"),
        "subscriptions_canceled": admin_list("djstripe_subscription", status="canceled"),
        "subscriptions_past_due": admin_list("djstripe_subscription", status="past_due"),
        "organizations": admin_list("billing_organization"),
        "stripe_invoices": admin_list("invoices_invoice", kind__exact="stripe"),
        "open_invoices": admin_list("invoices_invoice", kind__exact="stripe", status__exact="open"),
        "disputes": admin_list("djstripe_dispute"),
        "purchased_grants": admin_list("credits_creditgrant", source__exact="purchase"),
        "consumed": admin_list("credits_credittransaction", kind__exact="consume", **month),
        "webhooks": admin_list("djstripe_webhookeventtrigger"),
        "payouts": admin_list("djstripe_payout"),
        "reconcile_runs": admin_list("credits_reconcilerun"),
    }
    return render(
        request,
        "admin/analytics/dashboard.html",
        {
            "title": "Staff dashboard",
            "board": board,
            "chart": chart,
            "plans": plans,
            "leaders": leaders,
            "failed": failed,
            "disputes": disputes,
            "links": links,
            "reconcile": last_reconcile(),
            "has_permission": True,
            "site_header": "Billing administration",
            "site_title": "Billing administration",
        },
    )

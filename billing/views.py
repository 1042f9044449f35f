"""Tenant pages of the billing app: the organizations and the switcher, the dashboard (whose
panels the apps register in `billing.pages`), the plan table with upgrades, payment methods, and
the way to Stripe's Checkout and Billing Portal.

Pages read through the same selectors and write through the same services as the API; a
refused write (`ApplicationError`) becomes an error message on the page it came from."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats
from django.views.decorators.http import require_GET, require_POST

from config.exceptions import ApplicationError

from .access import Action
from .models import Interval
from .pages import (
    Alert,
    Page,
    alerts_collect,
    nav_links,
    nav_url,
    organization_page,
    panels_render,
    shell_context,
)
from .selectors import (
    organization_access,
    organization_billing_state,
    organization_list_for_user,
    organization_trial_days,
    payment_method_list,
    plan_list,
    subscription_needs_card,
    subscription_summary_get,
)
from .services import (
    payment_method_checkout_complete,
    payment_method_checkout_session_create,
    payment_method_detach,
    payment_method_set_default,
    portal_session_create,
    subscription_cancel,
    subscription_change,
    subscription_change_preview,
    subscription_checkout_session_create,
    subscription_resume,
    subscription_upcoming_invoice_get,
)

INTERVALS = (Interval.MONTH, Interval.YEAR)


def _return_key(request, field: str = "return_to") -> str:
    """The page a hosted Stripe page returns to: a known navigation key (never a URL from the
    request), the dashboard otherwise."""
    key = request.POST.get(field) or request.GET.get(field) or ""
    return key if key in {link.key for link in nav_links()} else "dashboard"


def _back(page: Page, key: str | None = None, **query):
    url = nav_url(key or _return_key(page.request), page.organization.pk)
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return redirect(url)


def _interval(value: str | None) -> str:
    return value if value in INTERVALS else Interval.MONTH


# --------------------------------------------------------------------------- organizations
@login_required
@require_GET
def organization_list_page(request):
    organizations = [
        {"organization": org, "state": organization_billing_state(organization=org)}
        for org in organization_list_for_user(user=request.user)
    ]
    return render(request, "billing/organization_list.html", {"organizations": organizations})


@login_required
@require_GET
def organization_switch(request):
    """The switcher's form: the same page of another organization the caller can reach."""
    access = organization_access(org_id=request.GET.get("org"), user=request.user)
    if access is None:
        raise Http404("Organization not found.")
    return redirect(nav_url(request.GET.get("page", ""), access.organization.pk))


# --------------------------------------------------------------------------- dashboard
@organization_page()
@require_GET
def organization_billing_page(request, page: Page):
    checkout = request.GET.get("checkout")
    if checkout == "success":
        messages.success(
            request, "Thank you: the payment went through. The page updates as soon as Stripe confirms it."
        )
    elif checkout == "canceled":
        messages.info(request, "Checkout was canceled; nothing was charged.")
    context = {
        **shell_context(page, active="dashboard", title="Overview"),
        "alerts": alerts_collect(page),
        "panels": panels_render(page),
    }
    return render(request, "billing/dashboard.html", context)


def plan_panel(page: Page) -> str:
    """The dashboard's plan panel: plan, status, renewal or trial end, next invoice."""
    organization = page.organization
    summary = subscription_summary_get(organization=organization)
    upcoming, upcoming_error = None, ""
    if not summary.is_free:
        try:
            upcoming = subscription_upcoming_invoice_get(organization=organization)
        except ApplicationError as exc:
            upcoming_error = exc.message
    cards = payment_method_list(organization=organization)
    context = {
        "organization": organization,
        "summary": summary,
        "state": organization_billing_state(organization=organization),
        "upcoming": upcoming,
        "upcoming_error": upcoming_error,
        "default_card": next((c for c in cards if c["is_default"]), cards[0] if cards else None),
        "can_pay": page.can_pay,
    }
    return render_to_string("billing/panels/plan.html", context, request=page.request)


def billing_alerts(page: Page):
    summary = subscription_summary_get(organization=page.organization)
    org = page.organization.pk
    if summary.status in ("past_due", "unpaid", "incomplete"):
        what = {
            "past_due": "The last payment of your subscription failed; Stripe is retrying it.",
            "unpaid": "Your subscription is unpaid: its invoices failed and it no longer renews.",
            "incomplete": "The first payment of your subscription is not complete.",
        }[summary.status]
        if not page.can_pay:
            yield Alert("payment", "danger", f"{what} Someone with the billing role can fix the payment.")
        elif summary.pay_url:
            yield Alert("payment", "danger", what, "Fix payment", summary.pay_url)
        else:
            yield Alert(
                "payment",
                "danger",
                what,
                "Fix payment",
                reverse("billing-portal", args=[org]),
                action_post=True,
                action_fields={"return_to": "dashboard"},
            )
    if summary.cancel_at_period_end and summary.current_period_end:
        when = formats.date_format(summary.current_period_end, "DATE_FORMAT")
        message = f"Your {summary.plan.name} subscription ends on {when}; then the Free plan applies."
        if page.can_pay:
            yield Alert(
                "canceling",
                "warning",
                message,
                "Resume",
                reverse("billing-resume", args=[org]),
                action_post=True,
            )
        else:
            yield Alert("canceling", "warning", message)


# --------------------------------------------------------------------------- plans and upgrades
def _plan_rows(page: Page, interval: str, summary) -> list[dict]:
    current_code = summary.plan.code
    rows = []
    for plan in plan_list():
        price = next((p for p in plan.prices.all() if p.active and p.interval == interval), None)
        rows.append(
            {
                "plan": plan,
                "price": price,
                "current": plan.code == current_code and (plan.is_free or summary.interval == interval),
                "current_plan": plan.code == current_code,
                "trial_days": organization_trial_days(organization=page.organization, plan=plan)
                if summary.is_free and not plan.is_free
                else 0,
                "limits": sorted((plan.limits or {}).items()),
            }
        )
    return rows


@organization_page()
@require_GET
def upgrade_page(request, page: Page):
    interval = _interval(request.GET.get("interval"))
    summary = subscription_summary_get(organization=page.organization)
    if request.GET.get("checkout") == "canceled":
        messages.info(request, "Checkout was canceled; nothing was charged.")
    context = {
        **shell_context(page, active="upgrade", title="Plans"),
        "interval": interval,
        "intervals": INTERVALS,
        "summary": summary,
        "rows": _plan_rows(page, interval, summary),
    }
    return render(request, "billing/upgrade.html", context)


@organization_page()
@require_GET
def upgrade_preview_page(request, page: Page):
    """What a plan change costs, from Stripe's invoice preview, with the form that confirms it.
    Rendered as a whole page, or as the fragment htmx puts under the plan table."""
    plan, interval = request.GET.get("plan", ""), _interval(request.GET.get("interval"))
    context = {**shell_context(page, active="upgrade", title="Change plan"), "interval": interval}
    try:
        context["preview"] = subscription_change_preview(
            organization=page.organization, plan=plan, interval=interval
        )
    except ApplicationError as exc:
        context["error"] = _error_text(exc)
    template = "billing/partials/upgrade_preview.html" if request.htmx else "billing/upgrade_preview.html"
    return render(request, template, context)


def _error_text(exc: ApplicationError) -> str:
    fields = (exc.extra or {}).get("fields") or {}
    details = " ".join(" ".join(map(str, msgs)) for msgs in fields.values())
    return details or exc.message


@organization_page(Action.PAY)
@require_POST
def upgrade_confirm(request, page: Page):
    plan, interval = request.POST.get("plan", ""), _interval(request.POST.get("interval"))
    proration_date = None
    raw = request.POST.get("proration_date", "")
    if raw:
        try:
            proration_date = datetime.fromtimestamp(int(raw), tz=UTC)
        except (ValueError, OverflowError, OSError):
            messages.error(request, "The preview was not understood; look at the amount again.")
            return _back(page, "upgrade")
    try:
        subscription_change(
            organization=page.organization, plan=plan, interval=interval, proration_date=proration_date
        )
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
        return _back(page, "upgrade")
    summary = subscription_summary_get(organization=page.organization)
    messages.success(request, f"Your plan is now {summary.plan.name} ({summary.interval or interval}ly).")
    return _back(page, "dashboard")


@organization_page(Action.PAY)
@require_POST
def checkout_start(request, page: Page):
    key = _return_key(request)
    came_from = _return_key(request, field="came_from") if request.POST.get("came_from") else key
    try:
        session = subscription_checkout_session_create(
            organization=page.organization,
            plan=request.POST.get("plan", ""),
            interval=_interval(request.POST.get("interval")),
            success_url=page.url(_url_name(key), query={"checkout": "success"}),
            # Canceled: back to the page the Checkout button was on (the plans), not the success page.
            cancel_url=page.url(_url_name(came_from), query={"checkout": "canceled"}),
        )
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
        return _back(page, came_from)
    return redirect(session.url)


def _url_name(key: str) -> str:
    return next((link.url_name for link in nav_links() if link.key == key), "billing-organization")


@organization_page(Action.PAY)
@require_POST
def portal_start(request, page: Page):
    key = _return_key(request)
    try:
        session = portal_session_create(organization=page.organization, return_url=page.url(_url_name(key)))
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
        return _back(page, key)
    return redirect(session.url)


@organization_page(Action.PAY)
@require_POST
def subscription_resume_action(request, page: Page):
    try:
        subscription_resume(organization=page.organization)
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "Your subscription will renew as usual.")
    return _back(page)


@organization_page(Action.PAY)
@require_POST
def subscription_cancel_action(request, page: Page):
    """Cancel at the period end (the plan applies until then); resumable from the dashboard."""
    try:
        subscription_cancel(organization=page.organization, immediately=False)
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "Your subscription will end at the end of the period.")
    return _back(page, "dashboard")


# --------------------------------------------------------------------------- payment methods
@organization_page()
@require_GET
def payment_methods_page(request, page: Page):
    session_id = request.GET.get("setup_session")
    if session_id and page.can_pay:
        # Back from Checkout in setup mode: record the card now (the webhook does it too).
        try:
            pm = payment_method_checkout_complete(organization=page.organization, session_id=session_id)
        except ApplicationError as exc:
            messages.error(request, _error_text(exc))
        else:
            if pm is not None:
                messages.success(request, "The card was saved.")
            else:
                messages.info(
                    request, "The card is not confirmed yet; it appears here once Stripe confirms it."
                )
        return redirect(reverse("billing-payment-methods", args=[page.organization.pk]))
    if request.GET.get("setup") == "canceled":
        messages.info(request, "No card was added.")
    cards = payment_method_list(organization=page.organization)
    context = {
        **shell_context(page, active="payment-methods", title="Payment methods"),
        "cards": cards,
        "last_card_locked": len(cards) == 1 and subscription_needs_card(organization=page.organization),
    }
    return render(request, "billing/payment_methods.html", context)


@organization_page(Action.PAY)
@require_POST
def payment_method_add(request, page: Page):
    try:
        session = payment_method_checkout_session_create(
            organization=page.organization,
            success_url=page.url("billing-payment-methods", query={"setup_session": "{CHECKOUT_SESSION_ID}"}),
            cancel_url=page.url("billing-payment-methods", query={"setup": "canceled"}),
        )
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
        return _back(page, "payment-methods")
    return redirect(session.url)


@organization_page(Action.PAY)
@require_POST
def payment_method_default(request, page: Page, pm: str):
    try:
        payment_method_set_default(organization=page.organization, payment_method_id=pm)
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "The default card was changed; renewals and purchases use it.")
    return _back(page, "payment-methods")


@organization_page(Action.PAY)
@require_POST
def payment_method_remove(request, page: Page, pm: str):
    try:
        payment_method_detach(organization=page.organization, payment_method_id=pm)
    except ApplicationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "The card was removed.")
    return _back(page, "payment-methods")

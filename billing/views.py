"""Server-rendered billing pages for tenants: their organizations, and each organization's plan
with buttons to Stripe's hosted Checkout (subscribe) and Billing Portal (cards, cancel, invoices)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from config.exceptions import ApplicationError

from .access import Action
from .selectors import (
    organization_access,
    organization_billing_state,
    organization_list_for_user,
    payment_method_list,
    plan_list,
    subscription_summary_get,
)
from .services import portal_session_create, subscription_checkout_session_create


def _access(request, org, action: Action = Action.READ):
    access = organization_access(org_id=org, user=request.user)
    if access is None:
        raise Http404("Organization not found.")
    if not access.allows(action):
        return access, HttpResponseForbidden(access.refusal(action))
    return access, None


@login_required
def organization_list_page(request):
    organizations = [
        {"organization": org, "state": organization_billing_state(organization=org)}
        for org in organization_list_for_user(user=request.user)
    ]
    return render(request, "billing/organization_list.html", {"organizations": organizations})


@login_required
def organization_billing_page(request, org):
    access, _ = _access(request, org)
    organization = access.organization
    summary = subscription_summary_get(organization=organization)
    context = {
        "organization": organization,
        "plan": summary.plan,
        "state": organization_billing_state(organization=organization),
        "subscription": summary if not summary.is_free else None,
        "period_end": summary.current_period_end,
        "cancel_at_period_end": summary.cancel_at_period_end,
        "plans": [p for p in plan_list() if not p.is_free],
        "cards": payment_method_list(organization=organization),
        "can_manage": access.allows(Action.PAY),
        "checkout_result": request.GET.get("checkout"),
    }
    return render(request, "billing/organization_billing.html", context)


@login_required
@require_POST
def checkout_start(request, org):
    access, refused = _access(request, org, Action.PAY)
    if refused:
        return refused
    page = request.build_absolute_uri(reverse("billing-organization", args=[access.organization.pk]))
    try:
        session = subscription_checkout_session_create(
            organization=access.organization,
            plan=request.POST.get("plan", ""),
            interval=request.POST.get("interval", "month"),
            success_url=f"{page}?checkout=success",
            cancel_url=f"{page}?checkout=canceled",
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(page)
    return redirect(session.url)


@login_required
@require_POST
def portal_start(request, org):
    access, refused = _access(request, org, Action.PAY)
    if refused:
        return refused
    page = request.build_absolute_uri(reverse("billing-organization", args=[access.organization.pk]))
    try:
        session = portal_session_create(organization=access.organization, return_url=page)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(page)
    return redirect(session.url)

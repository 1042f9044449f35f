"""The back office in the Django admin: the organization page (everything about one
organization, with its actions), the audit log, the long jobs with their progress, and the
reconcile runs.

It lives in the top app because the page reads every app (billing, credits, usage, invoices);
the admin registers models of the lower apps from here (importing their models only). Every
page is behind `admin_site.admin_view` (staff only: anyone else is sent to the login page;
API keys and platform keys never reach the admin). Actions also need the
`billing.run_backoffice_actions` permission (superusers have it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from billing.models import AuditEntry, BackofficeJob, OrganizationPage
from config.exceptions import ApplicationError, ValidationFailed
from credits.models import ReconcileRun
from credits.selectors import credit_summary_get

from ..models import Invoice
from . import forms as bo_forms
from .selectors import organization_overview_get
from .services import (
    backoffice_credits_adjust,
    backoffice_credits_grant,
    backoffice_invoice_resend,
    backoffice_job_run,
    backoffice_payment_refund,
    backoffice_subscription_cancel,
    backoffice_subscription_resume,
)

ACTION_PERMISSION = "billing.run_backoffice_actions"


def _require_action_permission(request) -> None:
    if not (request.user.is_active and request.user.is_staff and request.user.has_perm(ACTION_PERMISSION)):
        raise PermissionDenied


def _apply_error(form, exc: ApplicationError) -> None:
    """Show a service's refusal on the form: field errors where the form has the field."""
    if isinstance(exc, ValidationFailed):
        for name, errors in exc.extra.get("fields", {}).items():
            for error in errors:
                form.add_error(name if name in form.fields else None, error)
        if form.errors:
            return
    form.add_error(None, exc.message)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """Who did what, when, why, before and after. Nobody can change or delete a row (the
    database refuses it too)."""

    list_display = ["created_at", "actor", "action", "organization_link", "target", "reason_short"]
    list_filter = ["action", "created_at", "actor"]
    search_fields = ["organization_name", "organization_id", "target", "reason", "actor"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "actor",
        "action",
        "organization_name",
        "organization_id",
        "target",
        "reason",
        "changes",
    ]
    readonly_fields = fields

    @admin.display(description="Before and after")
    def changes(self, obj) -> str:
        """One row per figure, before and after side by side (the stored JSON, unchanged)."""
        names = list(dict.fromkeys([*obj.before, *obj.after]))
        if not names:
            return "—"
        rows = format_html_join(
            "",
            "<tr><th scope='row'>{}</th><td>{}</td><td>{}</td></tr>",
            ((name.replace("_", " "), obj.before.get(name, "—"), obj.after.get(name, "—")) for name in names),
        )
        return format_html(
            "<table><thead><tr><th></th><th>Before</th><th>After</th></tr></thead>{}</table>", rows
        )

    @admin.display(description="Organization", ordering="organization_name")
    def organization_link(self, obj) -> str:
        if not obj.organization_id:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:backoffice_organization_overview", args=[obj.organization_id]),
            obj.organization_name,
        )

    @admin.display(description="Reason")
    def reason_short(self, obj) -> str:
        return obj.reason if len(obj.reason) <= 80 else f"{obj.reason[:77]}..."


@admin.register(ReconcileRun)
class ReconcileRunAdmin(ReadOnlyAdmin):
    """Every reconcile (daily, from the admin, or `manage.py reconcile`) and what it found."""

    list_display = ["started_at", "trigger", "status", "drift_count", "finished_at", "requested_by"]
    list_filter = ["status", "trigger", "started_at"]
    fields = [
        "started_at",
        "finished_at",
        "trigger",
        "requested_by",
        "status",
        "with_stripe",
        "summary",
        "drift_count",
        "drift_lines",
        "error",
    ]
    readonly_fields = fields

    @admin.display(description="Drifts")
    def drift_lines(self, obj) -> str:
        if not obj.drifts:
            return "None"
        return format_html(
            "<ul>{}</ul>", format_html("".join("<li>{}</li>" for _ in obj.drifts), *obj.drifts)
        )


@admin.register(BackofficeJob)
class BackofficeJobAdmin(ReadOnlyAdmin):
    """Long actions run by a worker: catalogue sync, meter sync, reconcile. Start one with the
    buttons above the list; its page shows the progress and refreshes itself until it ends."""

    list_display = ["created_at", "kind", "status", "progress", "requested_by", "finished_at"]
    list_filter = ["kind", "status"]
    change_list_template = "admin/backoffice/job_changelist.html"
    change_form_template = "admin/backoffice/job_change_form.html"
    fields = [
        "kind",
        "status",
        "progress",
        "result",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields

    EXPLANATIONS = {
        BackofficeJob.Kind.CATALOGUE_SYNC: (
            "Creates or updates the Stripe products and prices of the plan catalogue (safe to run "
            "again: it matches them by lookup key)."
        ),
        BackofficeJob.Kind.METER_SYNC: (
            "Sends the usage above plan limits of every organization with a metered price to the "
            "Stripe meters now, instead of waiting for the schedule."
        ),
        BackofficeJob.Kind.RECONCILE: (
            "Checks the credit ledger's invariants and compares subscriptions, purchases and meters "
            "with Stripe. The result is stored; drift e-mails staff."
        ),
    }

    @admin.display(description="Progress")
    def progress(self, obj) -> str:
        if obj.status == BackofficeJob.Status.QUEUED:
            return "waiting for a worker"
        return f"{obj.done} of {obj.total} ({obj.percent}%)" if obj.total else obj.get_status_display()

    def get_urls(self):
        return [
            path("run/<str:kind>/", self.admin_site.admin_view(self.run_view), name="backoffice_job_run"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "job_kinds": [(k.value, k.label) for k in BackofficeJob.Kind],
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = BackofficeJob.objects.filter(pk=object_id).first()
        extra_context = {
            **(extra_context or {}),
            "job": job,
            "job_running": job is not None
            and job.status in (BackofficeJob.Status.QUEUED, BackofficeJob.Status.RUNNING),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def run_view(self, request, kind: str):
        _require_action_permission(request)
        if kind not in BackofficeJob.Kind.values:
            raise PermissionDenied
        label = BackofficeJob.Kind(kind).label
        form = bo_forms.JobRunForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = backoffice_job_run(actor=request.user, kind=kind, reason=form.cleaned_data["reason"])
            except ApplicationError as exc:
                _apply_error(form, exc)
            else:
                self.message_user(request, f"{label} queued; this page shows its progress.", messages.SUCCESS)
                return redirect("admin:billing_backofficejob_change", job.pk)
        return TemplateResponse(
            request,
            "admin/backoffice/action_form.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Run the {label.lower()} now",
                "explanation": self.EXPLANATIONS[kind],
                "form": form,
                "confirm_label": f"Run the {label.lower()}",
                "cancel_url": reverse("admin:billing_backofficejob_changelist"),
            },
        )


@admin.register(OrganizationPage)
class OrganizationPageAdmin(admin.ModelAdmin):
    """Everything about one organization in one place, and the actions staff take on it."""

    list_display = ["name", "billing_email", "plan", "subscription_status", "created_at", "open_link"]
    list_filter = ["plan", "subscription_status"]
    search_fields = ["name", "billing_email", "id", "memberships__user__email", "stripe_subscription_id"]
    list_select_related = ["plan"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="")
    def open_link(self, obj) -> str:
        return format_html(
            '<a href="{}">Open the page</a>', reverse("admin:backoffice_organization_overview", args=[obj.pk])
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:backoffice_organization_overview", args=[object_id]))

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<uuid:org>/overview/", view(self.overview_view), name="backoffice_organization_overview"),
            *[
                path(
                    f"<uuid:org>/{name}/",
                    view(self.action_view),
                    {"action": name},
                    name=f"backoffice_organization_{name}",
                )
                for name in ("grant", "adjust", "cancel", "resume", "refund")
            ],
            path(
                "<uuid:org>/invoices/<uuid:invoice_id>/resend/",
                view(self.action_view),
                {"action": "resend"},
                name="backoffice_organization_resend",
            ),
            *super().get_urls(),
        ]

    # ------------------------------------------------------------------ the page
    def _organization(self, request, org) -> OrganizationPage:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(OrganizationPage.objects.select_related("plan"), pk=org)

    def overview_view(self, request, org):
        organization = self._organization(request, org)
        overview = organization_overview_get(organization=organization)
        return TemplateResponse(
            request,
            "admin/backoffice/organization_overview.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": organization.name,
                "o": overview,
                "can_act": request.user.has_perm(ACTION_PERMISSION),
            },
        )

    # ------------------------------------------------------------------ actions
    def action_view(self, request, org, action: str, invoice_id=None):
        """Every staff action on an organization (the `ACTIONS` table): its confirmation page, then
        its service (which validates, acts and writes the audit row) and a success message."""
        spec = ACTIONS[action]
        organization = self._organization(request, org)
        call = ActionCall(
            actor=request.user,
            organization=organization,
            invoice=get_object_or_404(Invoice, pk=invoice_id, organization=organization)
            if invoice_id
            else None,
        )
        _require_action_permission(request)
        form = spec.form(request.POST or None, **spec.form_kwargs(call))
        if request.method == "POST" and form.is_valid():
            try:
                message = spec.run(call, form)
            except ApplicationError as exc:
                _apply_error(form, exc)
            else:
                self.message_user(request, message, messages.SUCCESS)
                return redirect("admin:backoffice_organization_overview", organization.pk)
        title = spec.title(call) if callable(spec.title) else spec.title
        return TemplateResponse(
            request,
            "admin/backoffice/action_form.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"{title}: {organization.name}",
                "explanation": spec.explanation,
                "facts": spec.facts(call),
                "form": form,
                "confirm_label": spec.confirm_label,
                "danger": spec.danger,
                "cancel_url": reverse("admin:backoffice_organization_overview", args=[organization.pk]),
            },
        )


# ---------------------------------------------------------------------- the organization actions
@dataclass
class ActionCall:
    """What an action's parts see: the staff user acting, the organization, the invoice (resend)."""

    actor: object
    organization: OrganizationPage
    invoice: Invoice | None = None

    @cached_property
    def overview(self):
        return organization_overview_get(organization=self.organization)

    @cached_property
    def refundable_payments(self) -> list[dict]:
        return [
            p
            for p in self.overview.payments
            if p["payment_intent"] and p["status"] == "succeeded" and p["amount"] > p["amount_refunded"]
        ]


@dataclass(frozen=True)
class OrganizationAction:
    """One staff action: the form of its confirmation page, the page's words and facts, and `run`,
    which calls the back-office service (the audit row is its job) and answers the success message."""

    form: type[forms.Form]
    title: str | Callable[[ActionCall], str]
    explanation: str
    confirm_label: str
    facts: Callable[[ActionCall], list[tuple[str, object]]]
    run: Callable[[ActionCall, forms.Form], str]
    danger: bool = False
    form_kwargs: Callable[[ActionCall], dict] = lambda call: {}


def _credit_facts(*figures: tuple[str, str]) -> Callable[[ActionCall], list[tuple[str, object]]]:
    def facts(call: ActionCall) -> list[tuple[str, object]]:
        summary = credit_summary_get(organization=call.organization)
        return [(label, getattr(summary, name)) for label, name in figures]

    return facts


def _subscription_facts(call: ActionCall) -> list[tuple[str, object]]:
    return [
        ("Plan", call.organization.plan or "Free"),
        ("Status", call.organization.subscription_status or "—"),
    ]


def _grant(call: ActionCall, form) -> str:
    data = form.cleaned_data
    entry = backoffice_credits_grant(
        actor=call.actor,
        organization=call.organization,
        amount=data["amount"],
        reason=data["reason"],
        expires_at=data["expires_at"],
        idempotency_key=data["idempotency_key"],
    )
    return f"Granted {data['amount']} credits." if entry else "Already granted (the form was sent twice)."


def _adjust(call: ActionCall, form) -> str:
    data = form.cleaned_data
    entry = backoffice_credits_adjust(
        actor=call.actor,
        organization=call.organization,
        amount=data["amount"],
        reason=data["reason"],
        idempotency_key=data["idempotency_key"],
    )
    return (
        f"Balance adjusted by {data['amount']}." if entry else "Already adjusted (the form was sent twice)."
    )


def _cancel(call: ActionCall, form) -> str:
    now = form.cleaned_data["when"] == "now"
    backoffice_subscription_cancel(
        actor=call.actor, organization=call.organization, immediately=now, reason=form.cleaned_data["reason"]
    )
    return "Subscription canceled now." if now else "Cancellation scheduled at period end."


def _resume(call: ActionCall, form) -> str:
    backoffice_subscription_resume(
        actor=call.actor, organization=call.organization, reason=form.cleaned_data["reason"]
    )
    return "Subscription resumed: it renews again."


def _refund(call: ActionCall, form) -> str:
    data = form.cleaned_data
    outcome = backoffice_payment_refund(
        actor=call.actor,
        organization=call.organization,
        payment_intent_id=data["payment_intent"],
        amount=form.amount_minor(),
        reason=data["reason"],
        idempotency_key=data["idempotency_key"],
    )
    return (
        f"Refunded {outcome.amount / 100:.2f} ({outcome.refund_id}); "
        f"{outcome.credits_taken_back} credits taken back."
    )


def _resend(call: ActionCall, form) -> str:
    invoice = call.invoice
    send = backoffice_invoice_resend(
        actor=call.actor,
        invoice=invoice,
        reason=form.cleaned_data["reason"],
        email=form.cleaned_data["email"] or None,
    )
    return f"Invoice {invoice.number or invoice.pk} queued to {', '.join(send.recipients)}."


ACTIONS: dict[str, OrganizationAction] = {
    "grant": OrganizationAction(
        form=bo_forms.CreditsGrantForm,
        title="Grant credits",
        explanation="A manual grant: the organization gets the credits without paying.",
        confirm_label="Grant the credits",
        facts=_credit_facts(("Balance now", "balance"), ("Available now", "available")),
        run=_grant,
    ),
    "adjust": OrganizationAction(
        form=bo_forms.CreditsAdjustForm,
        title="Adjust credits",
        explanation="Corrects the balance with an adjustment row in the ledger (nothing is edited).",
        confirm_label="Adjust the balance",
        facts=_credit_facts(("Balance now", "balance"), ("Overdraft limit", "overdraft_limit")),
        run=_adjust,
    ),
    "cancel": OrganizationAction(
        form=bo_forms.SubscriptionCancelForm,
        title="Cancel the subscription",
        explanation="Cancels on Stripe. At period end, the organization keeps its plan until then.",
        confirm_label="Cancel the subscription",
        facts=_subscription_facts,
        run=_cancel,
        danger=True,
    ),
    "resume": OrganizationAction(
        form=bo_forms.SubscriptionResumeForm,
        title="Resume the subscription",
        explanation="Undoes a cancellation scheduled at period end; the subscription renews as before.",
        confirm_label="Resume the subscription",
        facts=_subscription_facts,
        run=_resume,
    ),
    "refund": OrganizationAction(
        form=bo_forms.PaymentRefundForm,
        form_kwargs=lambda call: {"payments": call.refundable_payments},
        title="Refund a payment",
        explanation=(
            "Refunds through Stripe. If the payment bought credits, the unspent part of them in "
            "proportion to the refund is taken back from the balance."
        ),
        confirm_label="Refund",
        facts=lambda call: [
            ("Balance", call.overview.credits.balance),
            ("Held", call.overview.credits.held),
            ("Available", call.overview.credits.available),
        ],
        run=_refund,
        danger=True,
    ),
    "resend": OrganizationAction(
        form=bo_forms.InvoiceResendForm,
        title=lambda call: (
            f"Resend invoice {call.invoice.number or call.invoice.stripe_id or call.invoice.pk}"
        ),
        explanation="Sends the invoice again by e-mail, marked as a copy.",
        confirm_label="Send it again",
        facts=lambda call: [
            ("Status", call.invoice.status),
            ("Total", f"{call.invoice.total / 100:.2f} {call.invoice.currency.upper()}"),
        ],
        run=_resend,
    ),
}

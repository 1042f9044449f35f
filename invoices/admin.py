"""Back office of the invoices: Stripe invoices and statements, read-only, with filters (status,
kind, organization, period), search by number, and actions that go through the services and are
audited (`invoices.services.invoice_action_log`): resend, download the PDF, void and mark
uncollectible (Stripe invoices only; a statement is immutable)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from billing.models import Organization
from billing.templatetags.money import money
from config.exceptions import ApplicationError

from .documents import invoice_document_filename, invoice_document_pdf
from .models import Invoice, InvoiceAction, InvoiceLine, InvoiceSend, PeriodClose, StatementUsage
from .services import (
    invoice_download_log,
    invoice_mark_uncollectible,
    invoice_resend,
    invoice_void,
    period_close_dispatch,
)


def staff_actor(request) -> str:
    return f"staff:{request.user.pk}"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = ["position", "kind", "description", "quantity", "amount", "currency", "credits", "metric"]
    readonly_fields = fields
    ordering = ["position"]


class InvoiceSendInline(ReadOnlyInline):
    model = InvoiceSend
    fields = ["created_at", "recipients", "status", "resend", "requested_by", "sent_at", "attempts", "error"]
    readonly_fields = fields


class InvoiceActionInline(ReadOnlyInline):
    model = InvoiceAction
    fields = ["created_at", "action", "actor", "detail"]
    readonly_fields = fields


class StatementUsageInline(ReadOnlyInline):
    """What a billing statement billed of each metric and period (the late-usage watermark)."""

    model = StatementUsage
    verbose_name_plural = "usage billed (watermark)"
    fields = [
        "metric",
        "period_start",
        "period_end",
        "quantity",
        "events",
        "credits",
        "overage",
        "amount",
        "late",
    ]
    readonly_fields = fields


class OrganizationFilter(admin.SimpleListFilter):
    """Only the organizations that have invoices (the full list would be every tenant)."""

    title = "organization"
    parameter_name = "organization"

    def lookups(self, request, model_admin):
        ids = Invoice.objects.values_list("organization_id", flat=True).distinct()
        return [
            (str(org.pk), org.name) for org in Organization.objects.filter(pk__in=ids).order_by("name")[:200]
        ]

    def queryset(self, request, queryset):
        return queryset.filter(organization_id=self.value()) if self.value() else queryset


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = [
        "number_or_id",
        "organization",
        "kind",
        "status",
        "total_display",
        "period_start",
        "period_end",
        "created_at",
        "pdf_link",
    ]
    list_filter = [
        "kind",
        "status",
        OrganizationFilter,
        "period_close",
        "period_start",
        "period_end",
        "created_at",
    ]
    search_fields = ["number", "=stripe_id", "organization__name", "=organization__id"]
    date_hierarchy = "period_start"
    list_select_related = ["organization"]
    ordering = ["-created_at"]
    inlines = [InvoiceLineInline, StatementUsageInline, InvoiceSendInline, InvoiceActionInline]
    actions = ["resend", "download_pdf", "void", "mark_uncollectible"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        return [
            path(
                "<uuid:invoice_id>/pdf/",
                self.admin_site.admin_view(self.pdf_view),
                name="invoices_invoice_pdf",
            ),
            *super().get_urls(),
        ]

    def _pdf_response(self, request, invoice: Invoice) -> HttpResponse:
        data = invoice_document_pdf(invoice)
        invoice_download_log(invoice=invoice, actor=staff_actor(request))
        response = HttpResponse(data, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_document_filename(invoice)}"'
        return response

    def pdf_view(self, request, invoice_id):
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        return self._pdf_response(request, get_object_or_404(Invoice, pk=invoice_id))

    @admin.display(description="Number", ordering="number")
    def number_or_id(self, obj) -> str:
        return obj.number or obj.stripe_id or str(obj.pk)

    @admin.display(description="Total", ordering="total")
    def total_display(self, obj) -> str:
        return money(obj.total, obj.currency)

    @admin.display(description="PDF")
    def pdf_link(self, obj) -> str:
        return format_html('<a href="{}">PDF</a>', reverse("admin:invoices_invoice_pdf", args=[obj.pk]))

    def _each(self, request, queryset, label: str, act) -> None:
        done = 0
        for invoice in queryset.select_related("organization"):
            try:
                act(invoice)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{invoice}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{label}: {done} invoice(s).", messages.SUCCESS)

    @admin.action(description="Send again to the billing e-mail")
    def resend(self, request, queryset):
        self._each(
            request, queryset, "Sent again", lambda i: invoice_resend(invoice=i, actor=staff_actor(request))
        )

    @admin.action(description="Download the PDF (one invoice)")
    def download_pdf(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one invoice to download.", messages.WARNING)
            return None
        return self._pdf_response(request, queryset.select_related("organization").get())

    @admin.action(description="Void at Stripe")
    def void(self, request, queryset):
        self._each(request, queryset, "Voided", lambda i: invoice_void(invoice=i, actor=staff_actor(request)))

    @admin.action(description="Mark uncollectible at Stripe")
    def mark_uncollectible(self, request, queryset):
        self._each(
            request,
            queryset,
            "Marked uncollectible",
            lambda i: invoice_mark_uncollectible(invoice=i, actor=staff_actor(request)),
        )


@admin.register(InvoiceSend)
class InvoiceSendAdmin(admin.ModelAdmin):
    list_display = ["created_at", "invoice", "recipients", "status", "resend", "requested_by", "sent_at"]
    list_filter = ["status", "resend", "created_at"]
    search_fields = ["invoice__number", "=invoice__stripe_id"]
    list_select_related = ["invoice"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PeriodClose)
class PeriodCloseAdmin(admin.ModelAdmin):
    """The progress of each period close: statements issued out of the organizations to close."""

    list_display = [
        "__str__",
        "organizations",
        "issued",
        "progress",
        "dispatches",
        "dispatched_at",
        "finished_at",
    ]
    list_filter = ["finished_at", "period_start"]
    actions = ["dispatch_missing"]
    readonly_fields = [
        "period_start",
        "period_end",
        "organizations",
        "dispatches",
        "dispatched_at",
        "finished_at",
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(issued_count=Count("statements"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Statements issued", ordering="issued_count")
    def issued(self, obj) -> int:
        return obj.issued_count

    @admin.display(description="Progress")
    def progress(self, obj) -> str:
        if not obj.organizations:
            return "-"
        return f"{100 * obj.issued_count / obj.organizations:.1f}%"

    @admin.action(description="Dispatch the organizations still missing their statement")
    def dispatch_missing(self, request, queryset):
        for close in queryset.filter(finished_at__isnull=True):
            count = period_close_dispatch(close=close)
            self.message_user(request, f"{close}: {count} organization(s) dispatched.", messages.SUCCESS)


from .backoffice import admin as backoffice_admin  # noqa: E402,F401  (the back office pages)

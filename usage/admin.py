"""Back office of usage metering: metrics are editable; events and rollups are read-only lists
with filters (the tables are large: no detail pages, no totals count); the Stripe meter sync
state per organization with a "sync now" action that runs as a task (refresh to see progress)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from billing.models import Organization
from config.inputs import strict_number_overrides

from .models import Metric, UsageEventRow, UsageRollupRow, UsageSyncState
from .services import usage_meter_sync_queue


class MetricForm(forms.ModelForm):
    class Meta:
        model = Metric
        fields = [
            "code", "name", "description", "unit", "aggregation", "credit_price", "stripe_meter_event_name",
            "active", "sort_order",
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        price = data.get("credit_price")
        if price is not None and price.event_name != data.get("code"):
            self.add_error("credit_price", "A metric charges the credit price named by its own code.")
        return data


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    formfield_overrides = strict_number_overrides()  # config.inputs: the API's number rules
    form = MetricForm
    list_display = [
        "code",
        "name",
        "unit",
        "aggregation",
        "credit_price",
        "stripe_meter_event_name",
        "active",
    ]
    list_editable = ["active"]
    list_filter = ["aggregation", "active"]
    search_fields = ["code", "name"]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # events name it for ever; deactivate instead


class OrganizationFilter(admin.SimpleListFilter):
    """By organization (the 200 newest listed; search by organization id for any other)."""

    title = "organization"
    parameter_name = "organization"

    def lookups(self, request, model_admin):
        return [(str(o.pk), o.name) for o in Organization.objects.order_by("-created_at")[:200]]

    def queryset(self, request, queryset):
        return queryset.filter(organization_id=self.value()) if self.value() else queryset


class ReadOnlyListAdmin(admin.ModelAdmin):
    list_display_links = None
    actions = None
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return obj is None and request.user.is_staff


@admin.register(UsageEventRow)
class UsageEventAdmin(ReadOnlyListAdmin):
    list_display = [
        "occurred_at",
        "organization",
        "metric",
        "quantity",
        "credits",
        "user_id",
        "resource_type",
        "resource_id",
        "dimensions",
        "idempotency_key",
        "recorded_at",
    ]
    list_filter = [OrganizationFilter, "metric", "occurred_at"]
    list_select_related = ["organization", "metric"]
    search_fields = ["=organization__id", "=idempotency_key", "=resource_id", "=user_id"]


@admin.register(UsageRollupRow)
class UsageRollupAdmin(ReadOnlyListAdmin):
    list_display = ["hour", "organization", "metric", "quantity", "events", "quantity_max", "credits"]
    list_filter = [OrganizationFilter, "metric", "hour"]
    list_select_related = ["organization", "metric"]
    search_fields = ["=organization__id"]


@admin.register(UsageSyncState)
class UsageSyncStateAdmin(admin.ModelAdmin):
    list_display = [
        "organization",
        "status",
        "progress",
        "events_sent",
        "last_started_at",
        "last_success_at",
        "last_error",
    ]
    list_filter = ["status"]
    search_fields = ["organization__name", "=organization__id"]
    list_select_related = ["organization"]
    readonly_fields = [f.name for f in UsageSyncState._meta.fields]
    actions = ["sync_now"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Sync now to Stripe meters (runs as a task; refresh to follow its progress)")
    def sync_now(self, request, queryset):
        count = 0
        for state in queryset.select_related("organization"):
            usage_meter_sync_queue(organization=state.organization)
            count += 1
        self.message_user(request, f"Meter sync queued for {count} organization(s).", messages.SUCCESS)

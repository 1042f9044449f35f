"""Back office for tenancy. Writes go through the services, like every other caller."""

from __future__ import annotations

import contextlib

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from djstripe import models as djstripe_models
from djstripe.admin.admin import CustomerAdmin as DjstripeCustomerAdmin
from djstripe.admin.admin import SubscriptionAdmin as DjstripeSubscriptionAdmin

from config.exceptions import ApplicationError
from config.inputs import strict_number_overrides

from . import mirror_admin, stripe_data
from .models import (
    ApiKey,
    BillingNotice,
    Membership,
    Organization,
    Plan,
    PlanPrice,
    PlatformKey,
    PlatformScope,
    Role,
    TaskOutbox,
)
from .selectors import subscription_summary_get
from .services import (
    api_key_create,
    api_key_revoke,
    organization_billing_refresh,
    platform_key_create,
    stripe_catalog_sync,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["name", "prefix", "role", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are created from the API key page, which shows the key once


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "billing_email",
        "plan",
        "subscription_status",
        "member_count",
        "created_at",
        "overview_link",
    ]
    search_fields = ["name", "billing_email", "id", "memberships__user__email", "stripe_subscription_id"]
    list_filter = ["plan", "subscription_status", "created_at", "memberships__role"]
    list_select_related = ["plan"]
    readonly_fields = [
        "id",
        "plan",
        "plan_interval",
        "subscription_status",
        "subscription_summary",
        "stripe_links",
        "trial_used_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["id", "name", "billing_email"]}),
        (
            "Billing (from Stripe, kept in step by webhooks)",
            {
                "fields": [
                    "plan",
                    "plan_interval",
                    "subscription_status",
                    "subscription_summary",
                    "stripe_links",
                ]
            },
        ),
        (
            "Trial (once per organization)",
            {"fields": ["trial_used_at", "trial_days_override"]},
        ),
        ("Dates", {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [MembershipInline, ApiKeyInline]
    date_hierarchy = "created_at"
    actions = ["refresh_billing_state"]

    @admin.display(description="Subscription")
    def subscription_summary(self, obj) -> str:
        summary = subscription_summary_get(organization=obj)
        if summary.is_free:
            return "Free plan, no subscription"
        ends = "ends" if summary.cancel_at_period_end else "renews"
        period_end = f"{summary.current_period_end:%Y-%m-%d}" if summary.current_period_end else "—"
        trial = f", trial until {summary.trial_end:%Y-%m-%d}" if summary.trial_end else ""
        return f"{summary.plan.name} ({summary.interval}), {summary.status}{trial}; {ends} {period_end}"

    @admin.display(description="Stripe")
    def stripe_links(self, obj) -> str:
        customer = djstripe_models.Customer.objects.filter(subscriber=obj).first()
        if customer is None:
            return "No Stripe customer yet"
        parts = [
            format_html(
                '<a href="{}">Customer {}</a>',
                reverse("admin:djstripe_customer_change", args=[customer.pk]),
                customer.id,
            )
        ]
        if obj.stripe_subscription_id:
            sub = djstripe_models.Subscription.objects.filter(id=obj.stripe_subscription_id).first()
            if sub is not None:
                parts.append(
                    format_html(
                        '<a href="{}">Subscription {}</a>',
                        reverse("admin:djstripe_subscription_change", args=[sub.pk]),
                        sub.id,
                    )
                )
        return format_html(" · ".join(["{}"] * len(parts)), *parts)

    @admin.display(description="Back office")
    def overview_link(self, obj) -> str:
        """The organization page of the back office (`invoices.backoffice`), by URL name: billing
        does not import the app above it."""
        try:
            url = reverse("admin:backoffice_organization_overview", args=[obj.pk])
        except NoReverseMatch:
            return "—"
        return format_html('<a href="{}">Everything about it</a>', url)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        with contextlib.suppress(NoReverseMatch):
            extra_context["overview_url"] = reverse(
                "admin:backoffice_organization_overview", args=[object_id]
            )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Re-derive plan and status from the Stripe mirror")
    def refresh_billing_state(self, request, queryset):
        changed = sum(organization_billing_refresh(organization=org).changed for org in queryset)
        self.message_user(request, f"Refreshed {queryset.count()} organization(s); {changed} changed.")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("memberships", distinct=True))

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, obj) -> int:
        return obj._member_count


class ApiKeyCreateForm(forms.ModelForm):
    role = forms.ChoiceField(
        choices=[(r.value, r.label) for r in Role if r != Role.OWNER],
        initial=Role.ADMIN,
        help_text="What the key may do in its organization. Admin unless you need a narrower key.",
    )

    class Meta:
        model = ApiKey
        fields = ["organization", "name", "role"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "prefix", "role", "status", "created_at", "last_used_at"]
    list_filter = ["role", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "organization__name"]
    autocomplete_fields = ["organization"]
    actions = ["revoke_selected"]
    readonly_fields = [
        "organization",
        "prefix",
        "role",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "name", "role"]
        return [
            "name",
            "organization",
            "prefix",
            "role",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        created = api_key_create(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            role=form.cleaned_data["role"],
            created_by=request.user,
        )
        obj.pk = created.api_key.pk
        obj.__dict__.update({k: v for k, v in created.api_key.__dict__.items() if not k.startswith("_")})
        self.message_user(
            request,
            format_html(
                "API key created. Copy it now, it will not be shown again: <code>{}</code>", created.raw_key
            ),
            level=messages.WARNING,
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead, so the key's history stays

    @admin.display(description="Status")
    def status(self, obj) -> str:
        return "active" if obj.is_active else "revoked"

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", level=messages.SUCCESS)


class PlatformKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=PlatformScope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="The key can do only what these name, in every organization.",
    )

    class Meta:
        model = PlatformKey
        fields = ["name", "scopes"]


@admin.register(PlatformKey)
class PlatformKeyAdmin(admin.ModelAdmin):
    """The operator's own keys (the SaaS back end): any organization, only their scopes."""

    list_display = ["name", "prefix", "scope_list", "status", "created_at", "last_used_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix"]
    actions = ["revoke_selected"]
    readonly_fields = ["prefix", "scope_list", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = PlatformKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "scopes"]
        return ["name", "prefix", "scope_list", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        created = platform_key_create(
            name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], created_by=request.user
        )
        obj.pk = created.platform_key.pk
        obj.__dict__.update({k: v for k, v in created.platform_key.__dict__.items() if not k.startswith("_")})
        self.message_user(
            request,
            format_html(
                "Platform key created. Copy it now, it will not be shown again: <code>{}</code>",
                created.raw_key,
            ),
            level=messages.WARNING,
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead, so the key's history stays

    @admin.display(description="Scopes")
    def scope_list(self, obj) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="Status")
    def status(self, obj) -> str:
        return "active" if obj.is_active else "revoked"

    @admin.action(description="Revoke selected platform keys")
    def revoke_selected(self, request, queryset):
        count = 0
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=key)
            count += 1
        self.message_user(request, f"Revoked {count} platform key(s).", level=messages.SUCCESS)


class PlanPriceInline(admin.TabularInline):
    formfield_overrides = strict_number_overrides()  # config.inputs: the API's number rules
    model = PlanPrice
    extra = 0
    fields = ["interval", "amount", "currency", "active", "stripe_price_id"]
    readonly_fields = ["stripe_price_id"]


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    formfield_overrides = strict_number_overrides()  # config.inputs: the API's number rules
    list_display = ["name", "code", "included_credits", "trial_days", "active", "sort_order", "price_summary"]
    list_filter = ["active"]
    list_editable = ["active", "sort_order"]
    search_fields = ["name", "code"]
    readonly_fields = ["stripe_product_id", "created_at", "updated_at"]
    inlines = [PlanPriceInline]
    fieldsets = [
        (None, {"fields": ["code", "name", "description", "active", "sort_order"]}),
        (
            "What the plan gives",
            {
                "fields": ["included_credits", "trial_days", "trial_grants_credits", "limits", "features"],
                "description": "After changing prices, run <code>manage.py sync_stripe_catalog"
                "</code> (or the action on the list) to push them to Stripe.",
            },
        ),
        ("Stripe", {"fields": ["stripe_product_id", "created_at", "updated_at"]}),
    ]
    actions = ["sync_to_stripe"]

    def has_delete_permission(self, request, obj=None) -> bool:
        # The free plan is what every organization without a subscription gets: it must exist.
        # Retire other plans by unticking "active" (subscribers keep them; new ones cannot pick them).
        return obj is None or not obj.is_free

    @admin.display(description="Prices")
    def price_summary(self, obj) -> str:
        return (
            ", ".join(f"{p.amount / 100:.2f} {p.currency.upper()}/{p.interval}" for p in obj.prices.all())
            or "—"
        )

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("prices")

    @admin.action(description="Sync the catalogue to Stripe")
    def sync_to_stripe(self, request, queryset):
        try:
            result = stripe_catalog_sync()
        except ApplicationError as exc:
            self.message_user(request, f"Sync failed: {exc.message}", level=messages.ERROR)
            return
        self.message_user(
            request,
            f"Catalogue synced: {result.prices_created} price(s) created, "
            f"{result.products_created} product(s) created.",
            level=messages.SUCCESS,
        )


@admin.register(BillingNotice)
class BillingNoticeAdmin(admin.ModelAdmin):
    """The notice outbox: every e-mail queued, to organizations and to staff (alerts)."""

    list_display = ["kind", "audience", "organization", "created_at", "sent_at"]
    list_filter = ["audience", "kind", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["organization__name", "key"]
    readonly_fields = [
        "organization",
        "kind",
        "audience",
        "key",
        "context",
        "recipients",
        "created_at",
        "sent_at",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(TaskOutbox)
class TaskOutboxAdmin(admin.ModelAdmin):
    """Tasks enqueued while Redis was away (config/task_outbox.py): read only; beat sends them."""

    list_display = ["task", "task_id", "created_at", "dispatched_at", "attempts"]
    list_filter = [("dispatched_at", admin.EmptyFieldListFilter), "task"]
    search_fields = ["task", "task_id"]
    readonly_fields = [f.name for f in TaskOutbox._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class StripeStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"
    STATUSES = ["trialing", "active", "past_due", "incomplete", "unpaid", "canceled", "incomplete_expired"]

    def lookups(self, request, model_admin):
        return [(s, s.replace("_", " ")) for s in self.STATUSES]

    def queryset(self, request, queryset):
        return queryset.filter(stripe_data__status=self.value()) if self.value() else queryset


class OrganizationPlanFilter(admin.SimpleListFilter):
    title = "plan"
    parameter_name = "plan"
    path = "customer__subscriber__plan__code"

    def lookups(self, request, model_admin):
        return [(p.code, p.name) for p in Plan.objects.order_by("sort_order")]

    def queryset(self, request, queryset):
        return queryset.filter(**{self.path: self.value()}) if self.value() else queryset


class CustomerPlanFilter(OrganizationPlanFilter):
    path = "subscriber__plan__code"


def _organization_link(organization) -> str:
    if organization is None:
        return "—"
    return format_html(
        '<a href="{}">{}</a>',
        reverse("admin:billing_organization_change", args=[organization.pk]),
        organization.name,
    )


admin.site.unregister(djstripe_models.Subscription)


@admin.register(djstripe_models.Subscription)
class SubscriptionAdmin(DjstripeSubscriptionAdmin):
    """dj-stripe's subscription admin, with the organization, plan and status up front."""

    list_display = (
        "organization",
        "plan_name",
        "status_display",
        "period_end",
        "cancel_at_period_end_display",
    )
    list_filter = (StripeStatusFilter, OrganizationPlanFilter)
    search_fields = ("customer__subscriber__name", "customer__email")
    list_select_related = ("customer", "customer__subscriber", "customer__subscriber__plan")

    @admin.display(description="Organization")
    def organization(self, obj) -> str:
        return _organization_link(obj.customer.subscriber if obj.customer_id else None)

    @admin.display(description="Plan")
    def plan_name(self, obj) -> str:
        org = obj.customer.subscriber if obj.customer_id else None
        return org.plan.name if org and org.plan_id and org.stripe_subscription_id == obj.id else "—"

    @admin.display(description="Status")
    def status_display(self, obj) -> str:
        return obj.stripe_data.get("status", "")

    @admin.display(description="Period ends")
    def period_end(self, obj):
        return stripe_data.subscription_period(obj.stripe_data)[1]

    @admin.display(description="Cancels at period end", boolean=True)
    def cancel_at_period_end_display(self, obj) -> bool:
        return bool(obj.stripe_data.get("cancel_at_period_end"))


admin.site.unregister(djstripe_models.Customer)


@admin.register(djstripe_models.Customer)
class CustomerAdmin(DjstripeCustomerAdmin):
    list_display = (
        "organization",
        "email",
        "organization_plan",
        "organization_status",
        "default_payment_method",
    )
    list_filter = (CustomerPlanFilter, "subscriber__subscription_status")
    search_fields = ("email", "subscriber__name")
    list_select_related = ("subscriber", "subscriber__plan", "default_payment_method")

    @admin.display(description="Organization")
    def organization(self, obj) -> str:
        return _organization_link(obj.subscriber)

    @admin.display(description="Plan")
    def organization_plan(self, obj) -> str:
        return obj.subscriber.plan.name if obj.subscriber and obj.subscriber.plan_id else "Free"

    @admin.display(description="Subscription status")
    def organization_status(self, obj) -> str:
        return (obj.subscriber.subscription_status if obj.subscriber else "") or "—"


# Last, once dj-stripe's admins and the two above are registered: the mirror read-only.
mirror_admin.install()

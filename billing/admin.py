"""Back office for tenancy. Writes go through the services, like every other caller."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from .models import ApiKey, Membership, Organization, Role
from .services import api_key_create, api_key_revoke


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
    list_display = ["name", "billing_email", "member_count", "created_at"]
    search_fields = ["name", "billing_email", "id", "memberships__user__email"]
    list_filter = ["created_at", "memberships__role"]
    readonly_fields = ["id", "created_at", "updated_at"]
    fields = ["id", "name", "billing_email", "created_at", "updated_at"]
    inlines = [MembershipInline, ApiKeyInline]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        from django.db.models import Count

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

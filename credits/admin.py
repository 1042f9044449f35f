"""Back office of the credit ledger. Ledger rows and grants are read-only; staff grant or
adjust credits through an intermediate form with a required reason, and the services record
the staff user as the actor."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.template.response import TemplateResponse

from config.exceptions import ApplicationError
from config.inputs import StrictDecimalFormField, strict_number_overrides

from .formatting import credits_str
from .models import (
    AutoRefill,
    CreditAccount,
    CreditGrant,
    CreditHold,
    CreditPack,
    CreditPrice,
    CreditPurchase,
    CreditSource,
    CreditTransaction,
)
from .services import actor_label, credit_account_settings_update, credit_adjust, credit_grant


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CreditTransaction)
class CreditTransactionAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "organization",
        "kind",
        "signed_amount",
        "balance",
        "source",
        "reason",
        "actor",
    ]
    list_filter = ["kind", "grant__source", "created_at", "organization"]
    search_fields = [
        "organization__name",
        "=organization__id",
        "reason",
        "idempotency_key",
        "event_name",
        "=id",
    ]
    date_hierarchy = "created_at"
    list_select_related = ["organization", "grant"]
    ordering = ["-created_at", "-sequence"]

    @admin.display(description="Amount", ordering="amount")
    def signed_amount(self, obj) -> str:
        return credits_str(obj.amount)

    @admin.display(description="Balance after", ordering="balance_after")
    def balance(self, obj) -> str:
        return credits_str(obj.balance_after)

    @admin.display(description="Source", ordering="grant__source")
    def source(self, obj) -> str:
        return obj.grant.source if obj.grant_id else ""


@admin.register(CreditGrant)
class CreditGrantAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "source", "amount", "remaining", "expires_at", "reference"]
    list_filter = ["source", "created_at", "expires_at", "organization"]
    search_fields = ["organization__name", "=organization__id", "reference", "reason"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]


class GrantForm(forms.Form):
    amount = StrictDecimalFormField(max_digits=20, decimal_places=4, min_value=0.0001)
    source = forms.ChoiceField(
        choices=[(CreditSource.MANUAL, "Manual"), (CreditSource.PROMO, "Promo")], initial=CreditSource.MANUAL
    )
    expires_at = forms.DateTimeField(required=False, help_text="Empty: never expires.")
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class AdjustForm(forms.Form):
    amount = StrictDecimalFormField(
        max_digits=20, decimal_places=4, help_text="Positive adds credits, negative takes them away."
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


@admin.register(CreditAccount)
class CreditAccountAdmin(admin.ModelAdmin):
    formfield_overrides = strict_number_overrides()  # config.inputs: the API's number rules
    list_display = [
        "organization",
        "balance",
        "held",
        "available",
        "overdraft_limit",
        "low_balance_threshold",
        "updated_at",
    ]
    search_fields = ["organization__name", "=organization__id"]
    list_select_related = ["organization"]
    fields = [
        "organization",
        "balance",
        "held",
        "overdraft_limit",
        "low_balance_threshold",
        "sequence",
        "updated_at",
    ]
    readonly_fields = ["organization", "balance", "held", "sequence", "updated_at"]

    @admin.display(description="available")
    def available(self, obj) -> str:
        return credits_str(obj.balance - obj.held)

    actions = ["grant_credits", "adjust_credits"]

    def has_add_permission(self, request) -> bool:
        return False  # accounts appear with their first ledger row

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        try:
            credit_account_settings_update(
                organization=obj.organization,
                overdraft_limit=form.cleaned_data["overdraft_limit"],
                low_balance_threshold=form.cleaned_data["low_balance_threshold"],
            )
        except ApplicationError as exc:
            self.message_user(
                request, f"Not saved: {exc.message} {exc.extra.get('fields', '')}", messages.ERROR
            )

    def _run(self, request, queryset, *, form_class, title, apply):
        form = form_class(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            actor = actor_label(user_id=request.user.pk, is_staff=True)
            done = 0
            for account in queryset.select_related("organization"):
                try:
                    apply(account.organization, form.cleaned_data, actor)
                    done += 1
                except ApplicationError as exc:
                    self.message_user(request, f"{account.organization}: {exc.message}", messages.ERROR)
            if done:
                self.message_user(request, f"{title}: done for {done} account(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "form": form,
            "queryset": queryset,
            "action": request.POST.get("action"),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/credits/credit_action.html", context)

    @admin.action(description="Grant credits (with a reason)")
    def grant_credits(self, request, queryset):
        def apply(organization, data, actor):
            credit_grant(
                organization=organization,
                amount=data["amount"],
                source=data["source"],
                expires_at=data["expires_at"],
                reason=data["reason"],
                actor=actor,
            )

        return self._run(request, queryset, form_class=GrantForm, title="Grant credits", apply=apply)

    @admin.action(description="Adjust the balance (with a reason)")
    def adjust_credits(self, request, queryset):
        def apply(organization, data, actor):
            credit_adjust(
                organization=organization, amount=data["amount"], reason=data["reason"], actor=actor
            )

        return self._run(request, queryset, form_class=AdjustForm, title="Adjust credits", apply=apply)


@admin.register(CreditPrice)
class CreditPriceAdmin(admin.ModelAdmin):
    formfield_overrides = strict_number_overrides()  # config.inputs: the API's number rules
    list_display = ["event_name", "credits_per_unit", "category", "active", "updated_at"]
    list_filter = ["category", "active"]
    search_fields = ["event_name", "description"]


@admin.register(CreditPack)
class CreditPackAdmin(admin.ModelAdmin):
    formfield_overrides = strict_number_overrides()  # config.inputs: the API's number rules
    list_display = ["code", "name", "credits", "amount", "currency", "active", "sort_order"]
    list_filter = ["active", "currency"]


@admin.register(AutoRefill)
class AutoRefillAdmin(ReadOnlyAdmin):
    list_display = ["account", "enabled", "threshold", "pack", "amount", "consecutive_failures", "updated_at"]
    list_filter = ["enabled"]


@admin.register(CreditPurchase)
class CreditPurchaseAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "kind", "status", "credits", "amount", "payment_intent_id"]
    list_filter = ["kind", "status", "created_at"]
    search_fields = ["=id", "payment_intent_id", "checkout_session_id", "organization__name"]
    list_select_related = ["organization"]


@admin.register(CreditHold)
class CreditHoldAdmin(ReadOnlyAdmin):
    """Reservations (usage holds): read-only; they change through the usage API and beat."""

    list_display = [
        "created_at",
        "organization",
        "event_name",
        "quantity",
        "amount",
        "status",
        "expires_at",
        "consumed",
    ]
    list_filter = ["status", "event_name", "created_at"]
    search_fields = ["=organization__id", "organization__name", "idempotency_key", "=id"]
    list_select_related = ["organization"]

"""The dj-stripe mirror in the admin: read-only, grouped under one heading ("Stripe mirror
(read-only)", the dj-stripe app's verbose name set in `billing.apps.StripeMirrorConfig`), with
the models the product does not use hidden.

Data in the mirror comes from Stripe (webhooks, the services' `sync_from_stripe_data`) or from
a back-office action that goes through Stripe; never from a hand edit. So for every dj-stripe
model left registered, add, change and delete are refused, dj-stripe's own admin actions
(resync, cancel a subscription, ...) are removed, and so are their URLs. One action is added,
on webhook deliveries: replay a delivery that failed (audited, `webhook_delivery_replay`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from djstripe import models as djstripe_models

from config.exceptions import ApplicationError

from .services import webhook_delivery_replay

# What the product reads or shows; every other dj-stripe model is hidden from the admin.
MIRROR_MODELS_SHOWN = {
    "customer",
    "subscription",
    "invoice",
    "charge",
    "refund",
    "dispute",
    "paymentintent",
    "paymentmethod",
    "setupintent",
    "session",
    "product",
    "price",
    "balancetransaction",
    "payout",
    "event",
    "webhookendpoint",
    "webhookeventtrigger",
}


class ReadOnlyMirrorMixin:
    """No add, change or delete, no dj-stripe actions: the mirror follows Stripe."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        return {}

    def get_urls(self):
        return [url for url in super().get_urls() if getattr(url, "name", None) != "djstripe_custom_action"]


def read_only_mirror_admin(base: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    return type(f"ReadOnly{base.__name__}", (ReadOnlyMirrorMixin, base), {"__module__": __name__})


class ReplayForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional: why you replay it (kept in the audit log).",
    )


def _webhook_trigger_admin(base: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    class WebhookDeliveryAdmin(ReadOnlyMirrorMixin, base):
        """Every delivery Stripe made to this site, failed ones with their error, and a replay."""

        list_display = (
            "created",
            "event_type",
            "event",
            "processed",
            "valid",
            "exception",
            "replay_link",
        )
        list_filter = ("processed", "valid", "created")

        @admin.display(description="Event type")
        def event_type(self, obj) -> str:
            return obj.event.type if obj.event_id and obj.event else obj.json_body.get("type", "")

        @admin.display(description="Replay")
        def replay_link(self, obj) -> str:
            if obj.processed or not obj.valid:
                return "—"
            return format_html(
                '<a class="button" href="{}">Replay…</a>',
                reverse("admin:djstripe_webhookeventtrigger_replay", args=[obj.pk]),
            )

        def get_urls(self):
            return [
                path(
                    "<int:trigger_id>/replay/",
                    self.admin_site.admin_view(self.replay_view),
                    name="djstripe_webhookeventtrigger_replay",
                ),
                *super().get_urls(),
            ]

        def replay_view(self, request, trigger_id: int):
            if not (request.user.is_superuser or request.user.has_perm("billing.run_backoffice_actions")):
                raise PermissionDenied
            trigger = get_object_or_404(djstripe_models.WebhookEventTrigger, pk=trigger_id)
            form = ReplayForm(request.POST or None)
            if request.method == "POST" and form.is_valid():
                try:
                    webhook_delivery_replay(
                        actor=request.user, trigger_id=trigger.pk, reason=form.cleaned_data["reason"]
                    )
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    self.message_user(request, f"Delivery {trigger.pk} processed again.", messages.SUCCESS)
                    return redirect("admin:djstripe_webhookeventtrigger_changelist")
            return TemplateResponse(
                request,
                "admin/backoffice/action_form.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"Replay webhook delivery {trigger.pk}",
                    "form": form,
                    "explanation": (
                        "The delivery is processed again, as Stripe's redelivery would: the "
                        "handlers run on the current state of the objects. If it fails again, "
                        "nothing changes and the new error is kept on the delivery."
                    ),
                    "facts": [
                        ("Received", trigger.created),
                        ("Event", trigger.json_body.get("id", "")),
                        ("Type", trigger.json_body.get("type", "")),
                        ("Last error", trigger.exception or "—"),
                    ],
                    "confirm_label": "Replay the delivery",
                    "cancel_url": reverse("admin:djstripe_webhookeventtrigger_changelist"),
                    "opts": self.model._meta,
                },
            )

    return WebhookDeliveryAdmin


def install(site: admin.AdminSite = admin.site) -> None:
    """Hide the unused dj-stripe models and make the rest read-only (run once the dj-stripe and
    billing admins are registered)."""
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label != "djstripe":
            continue
        site.unregister(model)
        if model._meta.model_name not in MIRROR_MODELS_SHOWN:
            continue
        base = type(model_admin)
        if model is djstripe_models.WebhookEventTrigger:
            site.register(model, _webhook_trigger_admin(base))
        else:
            site.register(model, read_only_mirror_admin(base))

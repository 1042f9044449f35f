"""The tenant pages of the billing app, under `/billing/`."""

from django.urls import path

from . import views

ORG = "<uuid:org>"

urlpatterns = [
    path("", views.organization_list_page, name="billing-home"),
    path("switch", views.organization_switch, name="billing-switch"),
    path(f"{ORG}/", views.organization_billing_page, name="billing-organization"),
    path(f"{ORG}/upgrade/", views.upgrade_page, name="billing-upgrade"),
    path(f"{ORG}/upgrade/preview", views.upgrade_preview_page, name="billing-upgrade-preview"),
    path(f"{ORG}/upgrade/confirm", views.upgrade_confirm, name="billing-upgrade-confirm"),
    path(f"{ORG}/checkout", views.checkout_start, name="billing-checkout"),
    path(f"{ORG}/portal", views.portal_start, name="billing-portal"),
    path(f"{ORG}/subscription/resume", views.subscription_resume_action, name="billing-resume"),
    path(f"{ORG}/subscription/cancel", views.subscription_cancel_action, name="billing-cancel"),
    path(f"{ORG}/payment-methods/", views.payment_methods_page, name="billing-payment-methods"),
    path(f"{ORG}/payment-methods/add", views.payment_method_add, name="billing-payment-method-add"),
    path(
        f"{ORG}/payment-methods/<str:pm>/default",
        views.payment_method_default,
        name="billing-payment-method-default",
    ),
    path(
        f"{ORG}/payment-methods/<str:pm>/remove",
        views.payment_method_remove,
        name="billing-payment-method-remove",
    ),
]

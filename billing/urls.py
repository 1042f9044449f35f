from django.urls import path

from . import api

ORG = "organizations/<uuid:org>"

urlpatterns = [
    path("plans", api.PlanListApi.as_view(), name="plan-list"),
    path("organizations", api.OrganizationListCreateApi.as_view(), name="organization-list"),
    path(ORG, api.OrganizationDetailApi.as_view(), name="organization-detail"),
    path(f"{ORG}/members", api.MembershipListApi.as_view(), name="membership-list"),
    path(f"{ORG}/api-keys", api.ApiKeyListCreateApi.as_view(), name="api-key-list"),
    path(f"{ORG}/api-keys/<uuid:key_id>", api.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
    path(f"{ORG}/subscription", api.SubscriptionApi.as_view(), name="subscription"),
    path(
        f"{ORG}/subscription/upcoming-invoice",
        api.SubscriptionUpcomingInvoiceApi.as_view(),
        name="subscription-upcoming-invoice",
    ),
    path(f"{ORG}/subscription/cancel", api.SubscriptionCancelApi.as_view(), name="subscription-cancel"),
    path(f"{ORG}/subscription/resume", api.SubscriptionResumeApi.as_view(), name="subscription-resume"),
    path(f"{ORG}/payment-methods", api.PaymentMethodListCreateApi.as_view(), name="payment-method-list"),
    path(
        f"{ORG}/payment-methods/setup-intent",
        api.SetupIntentApi.as_view(),
        name="payment-method-setup-intent",
    ),
    path(
        f"{ORG}/payment-methods/<str:pm>/default",
        api.PaymentMethodDefaultApi.as_view(),
        name="payment-method-default",
    ),
    path(
        f"{ORG}/payment-methods/<str:pm>", api.PaymentMethodDetailApi.as_view(), name="payment-method-detail"
    ),
    path(f"{ORG}/portal-sessions", api.PortalSessionApi.as_view(), name="portal-session"),
]

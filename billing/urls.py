from django.urls import path

from . import api

ORG = "organizations/<uuid:org>"

urlpatterns = [
    path("plans", api.PlanListApi.as_view(), name="plan-list"),
    path("organizations", api.OrganizationListCreateApi.as_view(), name="organization-list"),
    path("organizations/<uuid:org>", api.OrganizationDetailApi.as_view(), name="organization-detail"),
    path("organizations/<uuid:org>/members", api.MembershipListApi.as_view(), name="membership-list"),
    path("organizations/<uuid:org>/api-keys", api.ApiKeyListCreateApi.as_view(), name="api-key-list"),
    path(
        "organizations/<uuid:org>/api-keys/<uuid:key_id>",
        api.ApiKeyRevokeApi.as_view(),
        name="api-key-revoke",
    ),
]

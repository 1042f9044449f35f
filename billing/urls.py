from django.urls import path

from . import api

urlpatterns = [
    path("organizations", api.OrganizationListCreateApi.as_view(), name="organization-list"),
    path("organizations/<uuid:org>", api.OrganizationDetailApi.as_view(), name="organization-detail"),
]

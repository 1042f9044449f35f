from django.urls import path

from . import api

ORG = "organizations/<uuid:org>/usage"

urlpatterns = [
    path(ORG, api.UsageSummaryApi.as_view(), name="usage"),
    path(f"{ORG}/events", api.UsageEventsApi.as_view(), name="usage-events"),
    path(f"{ORG}/track", api.UsageTrackApi.as_view(), name="usage-track"),
    path(f"{ORG}/stats", api.UsageStatsApi.as_view(), name="usage-stats"),
    path(f"{ORG}/cost-estimate", api.UsageCostEstimateApi.as_view(), name="usage-cost-estimate"),
    path(f"{ORG}/sync", api.UsageSyncApi.as_view(), name="usage-sync"),
    path(f"{ORG}/reservations", api.ReservationListApi.as_view(), name="usage-reservations"),
    path(
        f"{ORG}/reservations/<uuid:reservation_id>/settle",
        api.ReservationSettleApi.as_view(),
        name="usage-reservation-settle",
    ),
    path(
        f"{ORG}/reservations/<uuid:reservation_id>/release",
        api.ReservationReleaseApi.as_view(),
        name="usage-reservation-release",
    ),
    path(f"{ORG}/<str:metric>", api.UsageMetricApi.as_view(), name="usage-metric"),
]

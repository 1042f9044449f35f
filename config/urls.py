from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing import urls as billing_urls
from billing.webhooks import StripeWebhookView
from config import views
from config.exceptions import json_error_view
from credits import urls as credits_urls
from invoices import urls as invoices_urls
from usage import urls as usage_urls

# The apps' paths in one flat list: Django tries a request's path against each pattern in turn,
# and an app's list that does not match costs an exception and its bookkeeping on the way to the
# next. The paths do not overlap, so the order only decides how many patterns a request is tried
# against before its own: the calls a SaaS makes on every user action (credits, usage) first.
api_v1 = (
    credits_urls.urlpatterns + usage_urls.urlpatterns + billing_urls.urlpatterns + invoices_urls.urlpatterns
)

urlpatterns = [
    # First: every API call (the other prefixes below never start with api/v1/).
    path("api/v1/", include(api_v1)),
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("billing/", include("billing.page_urls")),
    path("billing/<uuid:org>/credits/", include("credits.page_urls")),
    path("billing/<uuid:org>/usage/", include("usage.page_urls")),
    path("billing/<uuid:org>/invoices/", include("invoices.page_urls")),
    path("admin/dashboard/", include("invoices.dashboard_urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # dj-stripe's endpoint with the checks it leaves out (billing/webhooks.py), then dj-stripe's.
    path("stripe/webhook/<uuid:uuid>/", StripeWebhookView.as_view(), name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    # Last: any other /api/... path is the contract's JSON 404, DEBUG on or off (never Django's
    # technical 404 page, which lists the URL patterns).
    re_path(r"^api/", csrf_exempt(json_error_view(404, "not_found", "Not found."))),
]

handler400 = "config.exceptions.handler400"
handler403 = "config.exceptions.handler403"
handler404 = "config.exceptions.handler404"
handler500 = "config.exceptions.handler500"

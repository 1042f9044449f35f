"""The API-key fast lane: a request to `/api/` carrying `Authorization: Bearer ...` skips the
middleware that only browsers need.

`ApiKeyLaneMiddleware` is first in MIDDLEWARE. A Bearer API request goes through a second chain
built from the same list without `BROWSER_ONLY_MIDDLEWARE` (static files, sessions, CSRF, the
session user, messages, htmx): such a request is authenticated by its key (DRF's
`ApiKeyAuthentication` answers it or refuses it with 401 before session authentication is ever
asked), DRF's views are exempt from Django's CSRF check, and no API view reads the session or
messages. What stays: SecurityMiddleware (HTTPS redirect, HSTS, nosniff), CommonMiddleware and
XFrameOptionsMiddleware, so the answers' headers are the same. Every other request (pages, the
admin, session-authenticated API calls) takes the full chain unchanged.
"""

from __future__ import annotations

import copy

from csp import middleware as csp_middleware
from django.conf import settings
from django.core.handlers.base import BaseHandler

BROWSER_ONLY_MIDDLEWARE = frozenset(
    {
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django_htmx.middleware.HtmxMiddleware",
    }
)
API_PREFIX = "/api/"


class _LaneHandler(BaseHandler):
    """A handler whose middleware chain is MIDDLEWARE without this lane and the browser-only ones."""

    def __init__(self, middleware: list[str]):
        super().__init__()
        full = settings.MIDDLEWARE
        # BaseHandler.load_middleware reads settings.MIDDLEWARE; this runs once, while the
        # application is built (before any request), and puts the list back at once.
        settings.MIDDLEWARE = middleware
        try:
            self.load_middleware()
        finally:
            settings.MIDDLEWARE = full

    def __call__(self, request):
        return self._middleware_chain(request)


class ApiKeyLaneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        me = f"{__name__}.{type(self).__name__}"
        self.lane = _LaneHandler(
            [m for m in settings.MIDDLEWARE if m != me and m not in BROWSER_ONLY_MIDDLEWARE]
        )

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX) and request.META.get("HTTP_AUTHORIZATION", "").startswith(
            "Bearer "
        ):
            return self.lane(request)
        return self.get_response(request)


# The response attributes through which django-csp's decorators give a view its own policy.
_PER_VIEW_POLICY = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware with the policies that come from the settings alone built once.

    django-csp builds both headers (the policy and the report-only one) from the settings for
    every answer, a JSON API answer included (about 5 % of the CPU of a one-event usage batch).
    When the request used no nonce and the view set no policy of its own, the headers depend on
    `CONTENT_SECURITY_POLICY` and `CONTENT_SECURITY_POLICY_REPORT_ONLY` only, so they are built
    once and kept with a copy of those settings (compared on every answer, so a changed setting
    builds them again). Anything else goes through django-csp unchanged. Same headers either way
    (tests/hardening/test_csp_cache.py)."""

    _built: tuple | None = None  # (policy setting, report-only setting, header, report-only header)

    def _from_settings(self) -> tuple[str, str]:
        enforced = getattr(settings, "CONTENT_SECURITY_POLICY", None)
        report_only = getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        built = self._built
        if built is None or built[0] != enforced or built[1] != report_only:
            built = (
                copy.deepcopy(enforced),
                copy.deepcopy(report_only),
                csp_middleware.build_policy(),
                csp_middleware.build_policy(report_only=True),
            )
            self._built = built
        return built[2], built[3]

    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in _PER_VIEW_POLICY
        ):
            return super().process_response(request, response)
        # What django-csp's process_response does, with the two headers built from the settings.
        if response.status_code in (500, 404) and settings.DEBUG:
            return response
        policy, policy_ro = self._from_settings()
        for header, value, exempt, setting in (
            (csp_middleware.HEADER, policy, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
            (
                csp_middleware.HEADER_REPORT_ONLY,
                policy_ro,
                "_csp_exempt_ro",
                "CONTENT_SECURITY_POLICY_REPORT_ONLY",
            ),
        ):
            if value and getattr(response, exempt, False) is False and header not in response:
                prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ()
                if not request.path_info.startswith(tuple(prefixes)):
                    response[header] = value
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response

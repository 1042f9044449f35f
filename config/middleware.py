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

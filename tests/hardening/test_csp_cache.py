"""`config.middleware.CSPMiddleware` (django-csp's, with the settings' policies built once)
answers the same headers as django-csp's own middleware, whatever the answer, the view's own
policy, the nonce, the exemptions and the settings. No database."""

from __future__ import annotations

import pytest
from csp.exceptions import CSPNonceError
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpResponse, JsonResponse
from django.test import RequestFactory

from config.middleware import CSPMiddleware

POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/api/docs/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'nonce'"],
        "img-src": ["'self'", "data:"],
    },
}
REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"], "report-uri": ["/csp-report"]}}


def _answer(kind: str):
    def view(request):
        if kind == "nonce":
            str(request.csp_nonce)  # a page that used the nonce
        response = JsonResponse({"a": 1}) if kind != "page" else HttpResponse("<p>x</p>")
        if kind == "404":
            response.status_code = 404
        if kind == "500":
            response.status_code = 500
        if kind == "update":
            response._csp_update = {"img-src": ["https://img.example"]}
        if kind == "replace_ro":
            response._csp_replace_ro = {"default-src": ["'self'"]}
        if kind == "exempt":
            response._csp_exempt = True
        if kind == "exempt_ro":
            response._csp_exempt_ro = True
        if kind == "has_header":
            response["Content-Security-Policy"] = "default-src 'none'"
        return response

    return view


def _headers(middleware_class, kind: str, path: str) -> dict:
    middleware = middleware_class(_answer(kind))
    request = RequestFactory().get(path)
    response = middleware(request)
    # After the answer, django-csp makes the nonce unusable (except for its early returns).
    try:
        str(request.csp_nonce)
        usable = kind != "nonce"  # a fresh one would be a second nonce (the first is kept)
    except CSPNonceError:
        usable = False
    headers = {k: v for k, v in response.items() if "Content-Security-Policy" in k}
    return {**headers, "nonce usable after": usable}


KINDS = ["json", "page", "404", "500", "nonce", "update", "replace_ro", "exempt", "exempt_ro", "has_header"]


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("report_only", [None, REPORT_ONLY])
@pytest.mark.parametrize("path", ["/api/v1/organizations/x/usage/events", "/api/docs/", "/billing/"])
def test_the_same_headers_as_django_csp(settings, debug, report_only, path):
    settings.DEBUG = debug
    settings.CONTENT_SECURITY_POLICY = POLICY
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = report_only
    for kind in KINDS:
        ours, theirs = _headers(CSPMiddleware, kind, path), _headers(DjangoCSPMiddleware, kind, path)
        if kind == "nonce":  # a fresh nonce each time: the same header but for it
            ours = {k: str(v).split("'nonce-")[0] for k, v in ours.items()}
            theirs = {k: str(v).split("'nonce-")[0] for k, v in theirs.items()}
        assert ours == theirs, kind
    if path == "/billing/" and not debug:
        assert "Content-Security-Policy" in _headers(CSPMiddleware, "json", path)  # a header is set


def test_a_changed_setting_builds_the_headers_again(settings):
    settings.CONTENT_SECURITY_POLICY = POLICY
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = None
    middleware = CSPMiddleware(_answer("json"))
    first = middleware(RequestFactory().get("/x"))["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert middleware(RequestFactory().get("/x"))["Content-Security-Policy"] == "default-src 'none'"
    # Changed in place, too.
    settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["default-src"] = ["'self'"]
    assert middleware(RequestFactory().get("/x"))["Content-Security-Policy"] == "default-src 'self'"
    assert first != "default-src 'self'"

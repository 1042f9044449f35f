"""config.csp.CSPMiddleware answers the same headers as django-csp's own middleware, which
builds the policy on every response; only the plain policy is built once (and rebuilt when the
settings change)."""

from __future__ import annotations

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpResponse, HttpResponseNotFound
from django.test import RequestFactory, override_settings

from config.csp import CSPMiddleware

REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'self'"], "report-uri": "/csp-report/"}}


def _response(kind: str):
    def view(request):
        if kind == "nonce":
            str(request.csp_nonce)  # a template that asks for the nonce
        response = HttpResponseNotFound("x") if kind == "not_found" else HttpResponse("x")
        if kind == "update":
            response._csp_update = {"img-src": ["https://cdn.example"]}
        elif kind == "replace":
            response._csp_replace = {"script-src": ["'self'", "https://cdn.example"]}
        elif kind == "config":
            response._csp_config = {"default-src": ["'none'"]}
        elif kind == "update_ro":
            response._csp_update_ro = {"img-src": ["https://cdn.example"]}
        elif kind == "exempt":
            response._csp_exempt = True
        elif kind == "preset":
            response[HEADER] = "default-src 'none'"
        return response

    return view


def _headers(middleware_class, kind: str, path: str):
    request = RequestFactory().get(path)
    response = middleware_class(_response(kind))(request)
    return {h: response.get(h) for h in (HEADER, HEADER_REPORT_ONLY)}, request


KINDS = ["plain", "nonce", "update", "replace", "config", "update_ro", "exempt", "preset", "not_found"]


@pytest.mark.parametrize("report_only", [False, True])
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/billing/", "/api/docs/", "/api/v1/plans"])
@pytest.mark.parametrize("kind", KINDS)
def test_same_headers_as_django_csp(kind, path, debug, report_only, settings):
    settings.DEBUG = debug
    if report_only:
        settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = REPORT_ONLY
    for _ in range(2):  # the second answer comes from the cache
        ours, _request = _headers(CSPMiddleware, kind, path)
        theirs, _request = _headers(DjangoCSPMiddleware, kind, path)
        assert ours == theirs
    if kind == "plain" and path == "/billing/":
        assert ours[HEADER] and "frame-ancestors 'none'" in ours[HEADER]
        assert (ours[HEADER_REPORT_ONLY] is not None) is report_only


def test_a_nonce_makes_its_own_header(settings):
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {"default-src": ["'self'"], "script-src": ["'self'", NONCE]}
    }
    first, request = _headers(CSPMiddleware, "nonce", "/billing/")
    second, _other = _headers(CSPMiddleware, "nonce", "/billing/")
    assert f"'nonce-{request._csp_nonce}'" in first[HEADER]
    assert first[HEADER] != second[HEADER]
    plain, _request = _headers(CSPMiddleware, "plain", "/billing/")
    assert "nonce-" not in plain[HEADER]


def test_nonce_after_the_header_is_an_error_as_in_django_csp():
    from csp.exceptions import CSPNonceError

    _answer, request = _headers(CSPMiddleware, "plain", "/billing/")
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)


def test_a_settings_change_rebuilds_the_plain_policy():
    before, _request = _headers(CSPMiddleware, "plain", "/billing/")
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "img-src": ["https://x.example"],
    }
    with override_settings(CONTENT_SECURITY_POLICY={"DIRECTIVES": directives}):
        during, _request = _headers(CSPMiddleware, "plain", "/billing/")
        assert "img-src https://x.example" in during[HEADER]
    after, _request = _headers(CSPMiddleware, "plain", "/billing/")
    assert after == before != during


@pytest.mark.django_db
def test_the_served_api_and_pages_carry_the_policy(client):
    from django.conf import settings as dj

    assert "config.csp.CSPMiddleware" in dj.MIDDLEWARE
    assert "csp.middleware.CSPMiddleware" not in dj.MIDDLEWARE
    for path in ("/api/v1/plans", "/accounts/login/"):
        response = client.get(path)
        assert "frame-ancestors 'none'" in response[HEADER], path

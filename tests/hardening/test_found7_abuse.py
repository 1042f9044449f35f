"""Issue 17, found 7: forwarded addresses count only behind trusted proxies, both login pages lock
out password guessing, pages carry the security headers, and success/cancel/return URLs only go
to this site's hosts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.test import RequestFactory
from rest_framework.test import APIClient

from config.client_ip import client_ip
from config.redirects import redirect_url_allowed
from tests.billing.factories import UserFactory

pytestmark = pytest.mark.django_db
BASE_DIR = Path(django_settings.BASE_DIR)


# --------------------------------------------------------------------------- trusted proxies
def test_without_trusted_proxies_x_forwarded_for_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_FOR="203.0.113.1")
    assert client_ip(request) == "192.0.2.10"


def test_behind_one_trusted_proxy_the_address_it_saw_counts(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    factory = RequestFactory()
    spoofed = factory.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    assert client_ip(spoofed) == "203.0.113.9"  # the client's own entries (left) never count
    assert client_ip(factory.get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"
    garbage = factory.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-address")
    assert client_ip(garbage) == "10.0.0.2"


def test_a_spoofed_x_forwarded_for_does_not_escape_the_limit(settings):
    settings.THROTTLE_RATES = {"anon": "2/min", "user": "100/min", "address": "100/min"}
    codes = [
        APIClient(HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").get("/api/v1/plans").status_code for i in range(3)
    ]
    assert codes == [200, 200, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.THROTTLE_RATES = {"anon": "2/min", "user": "100/min", "address": "100/min"}

    def get(forwarded: str) -> int:
        return APIClient(HTTP_X_FORWARDED_FOR=forwarded).get("/api/v1/plans").status_code

    # One real client (the proxy saw 203.0.113.5) varying the part it controls: limited together.
    assert [get(f"9.9.9.{i}, 203.0.113.5") for i in range(3)] == [200, 200, 429]
    assert get("203.0.113.6") == 200  # another client behind the same proxy


def test_compose_trusts_no_forwarded_address_by_default():
    compose = yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())
    web = compose["services"]["web"]["environment"]
    assert web["TRUSTED_PROXY_COUNT"] == "${TRUSTED_PROXY_COUNT:-0}"
    assert "*" not in web["FORWARDED_ALLOW_IPS"]
    assert django_settings.REST_FRAMEWORK["NUM_PROXIES"] == django_settings.TRUSTED_PROXY_COUNT == 0


# --------------------------------------------------------------------------- login lockout
@pytest.fixture
def person(db):
    user = UserFactory(username="pat@example.test", email="pat@example.test", is_staff=True)
    user.set_password("the-right-password-1")
    user.save()
    return user


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_password_guessing_is_locked_out_on_both_login_pages(client, person, path, settings):
    settings.AXES_FAILURE_LIMIT = 5
    wrong = {"username": person.username, "password": "guess"}
    answers = [client.post(path, wrong, REMOTE_ADDR="192.0.2.50") for _ in range(5)]
    assert [a.status_code for a in answers[:4]] == [200] * 4  # the form again, with its error
    assert answers[4].status_code == 429
    locked = client.post(
        path, {"username": person.username, "password": "the-right-password-1"}, REMOTE_ADDR="192.0.2.50"
    )
    assert locked.status_code == 429  # even the right password, until the cool-off ends
    text = locked.content.decode()
    assert "Too many failed sign-ins" in text and "15 minutes" in text and person.username in text
    assert "_auth_user_id" not in client.session
    attempt = AccessAttempt.objects.get(username=person.username)
    assert attempt.ip_address == "192.0.2.50" and attempt.failures_since_start >= 5

    # Keyed by username and address: the same person from another address still signs in.
    elsewhere = client.post(
        path,
        {"username": person.username, "password": "the-right-password-1", "next": "/"},
        REMOTE_ADDR="192.0.2.51",
    )
    assert elsewhere.status_code == 302
    assert client.session["_auth_user_id"] == str(person.pk)


def test_a_spoofed_forwarded_address_does_not_reset_the_lockout(client, person, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for i in range(3):
        client.post(
            "/accounts/login/",
            {"username": person.username, "password": "guess"},
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        )
    again = client.post(
        "/accounts/login/",
        {"username": person.username, "password": "the-right-password-1"},
        HTTP_X_FORWARDED_FOR="203.0.113.99",
    )
    assert again.status_code == 429


def test_a_success_resets_the_failures(client, person, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        client.post("/accounts/login/", {"username": person.username, "password": "guess"})
    ok = client.post("/accounts/login/", {"username": person.username, "password": "the-right-password-1"})
    assert ok.status_code == 302
    client.logout()
    for _ in range(2):
        client.post("/accounts/login/", {"username": person.username, "password": "guess"})
    ok = client.post("/accounts/login/", {"username": person.username, "password": "the-right-password-1"})
    assert ok.status_code == 302


# --------------------------------------------------------------------------- security headers
def _csp(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


def test_pages_carry_the_security_headers(client, person):
    client.force_login(person)
    for path in ("/accounts/login/", "/billing/", "/admin/"):
        response = client.get(path, follow=True)
        assert response.status_code == 200, path
        csp = _csp(response)
        assert csp["script-src"] == "script-src 'self'", path
        assert csp["frame-ancestors"] == "frame-ancestors 'none'"
        assert csp["object-src"] == "object-src 'none'"
        assert csp["default-src"] == "default-src 'self'"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in response  # not in development


def test_production_settings_send_hsts(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    response = client.get("/accounts/login/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_no_template_has_an_inline_script_or_event_handler():
    """What lets `script-src 'self'` hold: every script is a file, no `onclick=`, no `javascript:`."""
    offenders = []
    for path in (BASE_DIR / "templates").rglob("*.html"):
        if "emails" in path.parts:
            continue
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag:
                offenders.append(f"{path}: {tag}")
        offenders += [f"{path}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        offenders += [f"{path}: javascript:" for _ in re.findall(r"javascript:", text)]
    assert offenders == []


# --------------------------------------------------------------------------- redirect URLs
def test_redirect_urls_are_limited_to_the_sites_hosts(settings):
    settings.SITE_URL = "https://billing.example.com"
    settings.ALLOWED_HOSTS = ["billing.example.com", ".tenant.example.com", "*"]
    settings.REDIRECT_ALLOWED_HOSTS = ["app.partner.test"]
    assert redirect_url_allowed("https://billing.example.com/billing/?checkout=success")
    assert redirect_url_allowed("https://acme.tenant.example.com/done")
    assert redirect_url_allowed("https://app.partner.test/ok")
    for bad in (
        "https://evil.example/phish",
        "https://billing.example.com.evil.example/",
        "https://user:pw@evil.example/",
        "javascript:alert(1)",
        "ftp://billing.example.com/",
        "//evil.example/",
    ):
        assert not redirect_url_allowed(bad), bad


def test_checkout_portal_and_setup_refuse_other_hosts(billing_client, billing_org, stripe_emulator):
    org = billing_org.pk
    requests_before = len(stripe_emulator.request_log)
    evil = "https://evil.example/phish"
    ok = "http://localhost/ok"
    checkout = f"/api/v1/organizations/{org}/checkout-sessions"
    cases = [
        (checkout, {"kind": "payment_method", "success_url": evil, "cancel_url": ok}, "success_url"),
        (checkout, {"kind": "credits", "pack": "p", "success_url": ok, "cancel_url": evil}, "cancel_url"),
        (checkout, {"kind": "subscription", "plan": "starter", "success_url": evil}, "success_url"),
        (f"/api/v1/organizations/{org}/portal-sessions", {"return_url": evil}, "return_url"),
    ]
    for path, body, field in cases:
        response = billing_client.post(path, body, format="json")
        assert response.status_code == 400, (path, response.content)
        answer = response.json()
        assert answer["error"] == "validation_error" and field in answer["fields"], answer
    assert len(stripe_emulator.request_log) == requests_before  # nothing reached Stripe

    allowed = billing_client.post(
        f"/api/v1/organizations/{org}/checkout-sessions",
        {"kind": "payment_method", "success_url": ok, "cancel_url": ok},
        format="json",
    )
    assert allowed.status_code == 201, allowed.content

"""The Content-Security-Policy in a real browser (issue 17, found 7): the product pages load and
run htmx with no CSP violation, and an injected inline script is refused."""

import pytest

from billing.services import organization_create, user_get_or_create
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-42"


def test_the_pages_run_under_the_policy_and_inline_scripts_are_refused(page, live_server, stripe_server):
    owner, _ = user_get_or_create(email="grace@example.com", password=PASSWORD)
    org = organization_create(name="Compilers", billing_email="ap@compilers.test", owner=owner)
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    base = live_server.url

    sign_in(page, base, "grace@example.com", PASSWORD)
    for path in ("", "upgrade/", "credits/", "usage/", "payment-methods/", "invoices/"):
        response = page.goto(f"{base}/billing/{org.pk}/{path}")
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert page.evaluate("typeof window.htmx") == "object", path  # the static script ran

    # A script injected into the page (what an XSS would do) does not run.
    page.goto(f"{base}/billing/{org.pk}/upgrade/")
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.__injected = true'; document.body.appendChild(s); }"""
    )
    assert page.evaluate("window.__injected === undefined")
    violations = [m for m in messages if "Content Security Policy" in m]
    assert len(violations) == 1 and "inline script" in violations[0], messages

"""A real browser: Debian's Chromium driven by Playwright (no browser download), with helpers for
the page tests: `assert_accessible(page)` (axe-core) and `screenshot(page, name)`.

When Chromium is missing, the set-up installs it with apt-get where it can (root with apt-get,
through `.ci/apt-ensure`, as CI does). Where it cannot, a person's `make test` skips the browser
tests with the command to run; under CI (`CI` set) that is a failure: the browser tests never
skip in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
SCREENSHOTS = BASE_DIR / ".local" / "screenshots"
# axe-core impact levels that fail a page (minor and moderate ones are reported, not failed).
FAILING_IMPACTS = ("serious", "critical")


def chromium_path() -> str:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def ensure_chromium() -> str:
    path = chromium_path()
    if os.path.exists(path):
        return path
    result = subprocess.run(
        [str(BASE_DIR / ".ci" / "apt-ensure"), path, "chromium"], capture_output=True, text=True
    )
    if result.returncode == 0 and os.path.exists(chromium_path()):
        return chromium_path()
    message = (
        f"Chromium is not installed ({path}) and could not be installed here ({result.stderr.strip()}); "
        "`sudo apt-get install chromium` (or CHROMIUM_PATH=...) runs the browser tests"
    )
    if in_ci():
        pytest.fail(f"browser tests must run in CI: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser():
    executable = ensure_chromium()
    # Playwright's sync API runs an event loop in this thread; Django's ORM calls in the test are
    # still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    # Generous bounds for a loaded 2-core CI machine: waiting costs nothing when the page is there.
    page.set_default_timeout(60_000)
    page.set_default_navigation_timeout(60_000)
    expect.set_options(timeout=30_000)  # `expect(...)` has its own bound (5 s by default)
    yield page
    context.close()


def accessibility_violations(page, impacts: tuple[str, ...] = FAILING_IMPACTS) -> list[dict]:
    """axe-core's violations on the page as it is now, of the given impact levels."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [v for v in results.response["violations"] if v.get("impact") in impacts]


def assert_accessible(page) -> None:
    """Fail on any serious or critical axe-core violation of the page as it is now (WCAG 2 A/AA
    and axe's best practices), listing each rule, its help page and the offending elements."""
    violations = accessibility_violations(page)
    if violations:
        lines = [f"{len(violations)} serious/critical accessibility violations on {page.url}:"]
        for v in violations:
            lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
            for node in v["nodes"][:5]:
                lines.append(f"    {', '.join(map(str, node['target']))}: {node['html'][:160]}")
        pytest.fail("\n".join(lines), pytrace=False)


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG of the page under `.local/screenshots/<name>.png` (kept as a test artifact)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-')}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# --------------------------------------------------------------------------- the tenant pages' set-up
@pytest.fixture(scope="session")
def emulator_server_url(tmp_path_factory):
    """One Stripe emulator server for the browser session (its hosted Checkout and Portal pages are
    what Chromium visits); each test makes its own customers in it."""
    from tests.processes import stripe_emulator_server

    with stripe_emulator_server(tmp_path_factory.mktemp("stripe_emulator")) as url:
        yield url


@pytest.fixture
def stripe_server(emulator_server_url, _stripe, live_server, celery_eager):
    """stripe-python (and dj-stripe) in this process talk to the shared emulator server, whose
    webhooks reach the live server; the plans, credit packs and prices and the usage metrics are
    seeded again (a transactional test before this one emptied the tables) and synced."""
    import importlib

    import requests
    import stripe
    from django.apps import apps

    from billing.catalogue import catalogue_seed
    from billing.models import Plan, PlanPrice
    from billing.services import stripe_catalog_sync, webhook_endpoint_register
    from tests.processes import wait_until
    from usage.selectors import catalog_cache_clear

    saved = stripe.api_base, stripe.default_http_client
    stripe.api_base, stripe.default_http_client = emulator_server_url, stripe.RequestsClient()
    catalogue_seed(Plan, PlanPrice)
    importlib.import_module("credits.migrations.0003_seed_catalogue").seed(apps, None)
    importlib.import_module("usage.migrations.0002_seed_metrics").seed(apps, None)  # after the prices
    catalog_cache_clear()
    stripe_catalog_sync()
    endpoint = webhook_endpoint_register(base_url=live_server.url)
    try:
        yield emulator_server_url
    finally:
        # The database is emptied after the test: this endpoint's secret goes with it.
        stripe.WebhookEndpoint.delete(endpoint.id, api_key="sk_test_" + "x" * 24)
        # A delivery already under way finishes before the database is emptied (a webhook handler
        # holding row locks while the flush truncates the tables deadlocks it): wait until the
        # emulator has none in flight (a fixed sleep is too short on a loaded machine).
        wait_until(
            lambda: (
                not any(
                    d["status"] == "sending"
                    for d in requests.get(f"{emulator_server_url}/_emulator/webhooks", timeout=30).json()[
                        "deliveries"
                    ]
                )
            ),
            timeout=120,
            what="the webhook deliveries under way to finish",
        )
        stripe.api_base, stripe.default_http_client = saved


def sign_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/billing/"))


def check(page, name: str) -> None:
    """Every product page a browser test visits: axe-core finds no serious or critical
    violation, and a screenshot is kept under .local/screenshots/."""
    screenshot(page, name)
    assert_accessible(page)


def reload_until(page, predicate, *, seconds: float = 120, wait_ms: int = 500) -> None:
    """Webhooks from the emulator server arrive a moment later: reload until the page shows it
    (for up to `seconds`: a loaded machine can take long)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        page.wait_for_timeout(wait_ms)
        page.reload()
    assert predicate(), f"the page never showed the change: {page.url}"

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
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
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

"""The browser helpers themselves: axe-core finds what it should, screenshots land under .local/."""

import pytest

from tests.browser.conftest import SCREENSHOTS, accessibility_violations, assert_accessible, screenshot

GOOD = """<!doctype html><html lang="en"><head><title>Fine</title></head>
<body><main><h1>Fine</h1><label for="q">Search</label><input id="q" name="q"></main></body></html>"""
BAD = """<!doctype html><html lang="en"><head><title>Broken</title></head>
<body><main><h1>Broken</h1><img src="chart.png"><input name="q"><button></button></main></body></html>"""


def test_assert_accessible_fails_on_serious_violations_and_passes_a_clean_page(page):
    page.set_content(GOOD)
    assert_accessible(page)

    page.set_content(BAD)
    found = {v["id"] for v in accessibility_violations(page)}
    assert {"image-alt", "label", "button-name"} <= found, found
    with pytest.raises(pytest.fail.Exception, match="image-alt"):
        assert_accessible(page)


def test_screenshot_saves_a_png_under_local_screenshots(page):
    page.set_content(GOOD)
    path = screenshot(page, "helper check/fine")
    assert path == SCREENSHOTS / "helper-check-fine.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

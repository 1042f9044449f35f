"""The API's paths (config/urls.py): one flat list of the apps' patterns under /api/v1/, in which
each path resolves to its own view whatever the order, and the hot calls come first."""

from __future__ import annotations

import re
import uuid

from django.urls import resolve

from config.urls import api_v1

SAMPLES = {"uuid": str(uuid.UUID(int=7)), "str": "some-value", "int": "3", "slug": "a-slug"}


def sample(route: str) -> str:
    return "/api/v1/" + re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES[m.group(1) or "str"], route)


def test_every_api_path_resolves_to_its_own_view():
    names = [p.name for p in api_v1]
    assert len(names) == len(set(names)) and all(names)
    for pattern in api_v1:
        assert resolve(sample(str(pattern.pattern))).url_name == pattern.name, pattern


def test_the_hot_calls_are_tried_first():
    names = [p.name for p in api_v1]
    hot = ["credits", "credits-consume", "usage", "usage-events", "usage-track", "subscription"]
    assert max(names.index(n) for n in hot[:5]) < 15
    assert names.index("subscription") < names.index("invoices")

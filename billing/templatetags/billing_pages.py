"""Small helpers of the tenant page templates (numbers and money are in `money`)."""

from __future__ import annotations

from django import template

register = template.Library()

ACRONYMS = {"SMS", "AI", "API", "MB", "GB", "CSV", "PDF", "SSO"}


@register.filter
def code_label(code: str) -> str:
    """`SMS_SENT` -> `SMS sent`, `basic_analytics` -> `Basic analytics`."""
    words = [w.upper() if w.upper() in ACRONYMS else w.lower() for w in str(code).split("_") if w]
    if not words:
        return ""
    first = words[0] if words[0] in ACRONYMS else words[0].capitalize()
    return " ".join([first, *words[1:]])

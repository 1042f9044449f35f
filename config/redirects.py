"""Success, cancel and return URLs: only to this site, or to hosts allowed by name.

Stripe sends the customer to these URLs after Checkout, the customer portal or setup mode; taken
as they come from an API caller they would make the product an open redirect (a phishing page
reached through a genuine Stripe flow). A URL is accepted when it is http(s) and its host is
SITE_URL's, one of ALLOWED_HOSTS (the site's own names; `*` is ignored here, a leading dot allows
subdomains as Django does) or one of REDIRECT_ALLOWED_HOSTS; anything else is a 400
`validation_error` naming the field.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host
from rest_framework import serializers

MAX_LENGTH = 2048  # Stripe accepts up to 5,000 characters; no return URL of ours comes near


def allowed_redirect_hosts() -> list[str]:
    hosts = [urlsplit(settings.SITE_URL).hostname or ""]
    hosts += [h for h in settings.ALLOWED_HOSTS if h != "*"]
    hosts += list(settings.REDIRECT_ALLOWED_HOSTS)
    return [h.lower() for h in hosts if h]


def redirect_url_allowed(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return False
    return validate_host(host.lower(), allowed_redirect_hosts())


class RedirectUrlField(serializers.URLField):
    """A URLField limited to the allowed hosts (see the module's docstring)."""

    default_error_messages = {
        "host_not_allowed": "This host is not allowed: use a URL on this site.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        url = super().to_internal_value(data)
        if not redirect_url_allowed(url):
            self.fail("host_not_allowed")
        return url

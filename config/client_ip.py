"""The client's address, the one place that decides whether `X-Forwarded-For` counts.

`TRUSTED_PROXY_COUNT` (default 0) is the number of proxies in front of the application that each
append the address they received a request from to `X-Forwarded-For`. With 0 the header is ignored
and the address is the socket's (`REMOTE_ADDR`): a client cannot choose its own address by sending
the header. With N, the address is the N-th entry from the right, the one the outermost trusted
proxy saw; entries further left were written by the client and are never used.

Used by the API throttles (`config/throttling.py`) and the login lockout (django-axes,
`AXES_CLIENT_IP_CALLABLE`), and by anything else that needs the caller's address.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def _valid(value: str) -> str | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:5123"
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(request) -> str:
    """The caller's address as a string (never empty: "unknown" when even the socket's is missing)."""
    meta = request.META
    remote = _valid(meta.get("REMOTE_ADDR") or "") or "unknown"
    count = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if count <= 0:
        return remote
    forwarded = [part for part in (meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if part.strip()]
    if not forwarded:
        return remote
    chosen = forwarded[-min(count, len(forwarded))]
    return _valid(chosen) or remote


def axes_client_ip(request, *args, **kwargs) -> str | None:
    """django-axes' `AXES_CLIENT_IP_CALLABLE` (it passes the request); None when unknown (a
    sign-in made in code, with no socket), which axes stores as no address."""
    address = client_ip(request)
    return None if address == "unknown" else address

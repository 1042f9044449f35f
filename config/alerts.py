"""Alerts for the operators: conditions that need a person (a cap reached, a backlog about to
fall out of Stripe's window, a webhook at the wrong API version). Each is logged at ERROR on the
`alerts` logger (route it to paging) and mailed to `ADMINS`, at most once per `every` seconds
per code and subject (the dedupe key lives in the cache; if the cache is down, it alerts anyway)."""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.core.mail import mail_admins

logger = logging.getLogger("alerts")


def ops_alert(code: str, message: str, *, subject: str = "", every: int = 3600, **context) -> bool:
    """Raise an alert; answers False when the same one was raised within `every` seconds."""
    try:
        fresh = cache.add(f"ops-alert:{code}:{subject}", 1, timeout=every)
    except Exception:
        fresh = True
    if not fresh:
        return False
    details = " ".join(f"{k}={v}" for k, v in sorted(context.items()))
    logger.error("ALERT %s %s: %s %s", code, subject, message, details, extra={"alert": code})
    mail_admins(f"[billing alert] {code} {subject}".strip(), f"{message}\n\n{details}", fail_silently=True)
    return True

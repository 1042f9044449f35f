"""The only module that imports `stripe`: one function per Stripe call.

Every call passes our API key and the pinned API version, takes an idempotency key derived
from our own row (never random, so a retried Celery task reuses it), and turns Stripe's errors
into our own: a card error becomes `PaymentFailed` (402, with the decline code), a rate limit,
connection failure or Stripe-side 5xx becomes `StripeUnavailable` (503). Logs carry the
status, type, code and param of an error, never card data or keys.

The module-level stripe-python API is used (not `StripeClient`) because dj-stripe uses it
too: one `stripe.api_base` / `stripe.default_http_client` serves both, which is how tests put
the in-process emulator under everything.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import stripe
from django.conf import settings

from config.exceptions import ApplicationError

from .exceptions import PaymentFailed, StripeUnavailable

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class StripeRequestError(ApplicationError):
    """Stripe refused the request as invalid (a bug or stale data on our side)."""

    code = "stripe_error"
    status = 502
    default_message = "The payment processor refused the request."


def request_options(idempotency_key: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "api_key": settings.STRIPE_SECRET_KEY,
        "stripe_version": settings.STRIPE_API_VERSION,
    }
    if idempotency_key:
        options["idempotency_key"] = idempotency_key
    return options


def translate_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Map stripe-python exceptions onto the application's errors."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except stripe.CardError as exc:
            err = exc.error
            logger.info(
                "stripe card error in %s: status=%s code=%s decline_code=%s",
                func.__name__,
                exc.http_status,
                getattr(err, "code", None),
                getattr(err, "decline_code", None),
            )
            decline_code = getattr(err, "decline_code", None) or getattr(err, "code", None)
            raise PaymentFailed(
                exc.user_message or "The card was declined.",
                extra={"decline_code": decline_code, "stripe_code": getattr(err, "code", None)},
            ) from exc
        except (stripe.RateLimitError, stripe.APIConnectionError) as exc:
            logger.warning("stripe unavailable in %s: %s", func.__name__, type(exc).__name__)
            raise StripeUnavailable() from exc
        except stripe.StripeError as exc:
            err = exc.error
            logger.warning(
                "stripe error in %s: status=%s type=%s code=%s param=%s",
                func.__name__,
                exc.http_status,
                getattr(err, "type", None),
                getattr(err, "code", None),
                getattr(err, "param", None),
            )
            if exc.http_status is None or exc.http_status >= 500:
                raise StripeUnavailable() from exc
            raise StripeRequestError(
                getattr(err, "message", None) or "The payment processor refused the request.",
                extra={"stripe_code": getattr(err, "code", None), "param": getattr(err, "param", None)},
            ) from exc

    return wrapper


@translate_errors
def account_retrieve() -> dict[str, Any]:
    """Used by the health and set-up checks: proves the key and the host work."""
    return stripe.Account.retrieve(**request_options()).to_dict()

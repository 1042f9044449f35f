"""Errors of the billing app, each with a stable code from the API contract."""

from rest_framework import status

from config.exceptions import ApplicationError


class PaymentFailed(ApplicationError):
    code = "payment_failed"
    status = status.HTTP_402_PAYMENT_REQUIRED
    default_message = "The payment failed."


class StripeUnavailable(ApplicationError):
    code = "stripe_unavailable"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    default_message = "The payment processor is unavailable; try again shortly."


class StripeRateLimited(StripeUnavailable):
    """Stripe answered 429: to API callers a `stripe_unavailable` 503 like any outage; callers
    that pace themselves (the meter sync) read `retry_after` (seconds, when Stripe said)."""

    def __init__(self, message: str | None = None, *, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(message, extra={"retry_after": retry_after} if retry_after is not None else None)


class SubscriptionExists(ApplicationError):
    code = "subscription_exists"
    status = status.HTTP_409_CONFLICT
    default_message = "This organization already has a subscription."


class UnknownStripePrice(ApplicationError):
    code = "unknown_stripe_price"
    status = status.HTTP_409_CONFLICT
    default_message = "A Stripe price maps to no plan of the catalogue."

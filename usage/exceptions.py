"""Errors of the usage app, each with a stable code from the API contract."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from rest_framework import status

from config.exceptions import ApplicationError
from credits.formatting import credits_str


def upgrade_url(organization_id) -> str:
    """Where a refused caller can raise the limit: absolute (`USAGE_UPGRADE_URL`)."""
    return settings.USAGE_UPGRADE_URL.format(site_url=settings.SITE_URL, organization_id=organization_id)


def percentage(current: Decimal, limit: Decimal) -> float:
    if limit <= 0:
        return 100.0 if current > 0 or limit == 0 else 0.0
    return float(round(current * 100 / limit, 2))


class QuotaExceeded(ApplicationError):
    """The plan's limit for the period does not allow this: nothing was recorded or consumed."""

    code = "quota_exceeded"
    status = status.HTTP_402_PAYMENT_REQUIRED

    def __init__(self, *, organization_id, metric: str, current: Decimal, limit: Decimal, requested: Decimal):
        self.metric = metric
        self.current = current
        self.limit = limit
        message = (
            f"The plan allows {credits_str(limit)} {metric} this period; {credits_str(current)} are used "
            f"and {credits_str(requested)} more were asked for."
        )
        super().__init__(
            message,
            extra={
                "quota": {
                    "metric": metric,
                    "current": credits_str(current),
                    "limit": credits_str(limit),
                    "percentage": percentage(current, limit),
                },
                "upgrade_url": upgrade_url(organization_id),
            },
        )


class UnknownMetric(ApplicationError):
    code = "validation_error"
    status = status.HTTP_400_BAD_REQUEST

    def __init__(self, metric: str, field: str = "metric"):
        message = f"Unknown or inactive metric {metric!r}."
        super().__init__(message, extra={"fields": {field: [message]}})


class ReservationNotFound(ApplicationError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    default_message = "Reservation not found."

"""Errors of the credits app, each with a stable code from the API contract."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import status

from config.exceptions import ApplicationError

from .formatting import credits_str


class InsufficientCredits(ApplicationError):
    """Refused consumption: nothing was consumed. The body says the balance and the requirement."""

    code = "insufficient_credits"
    status = status.HTTP_402_PAYMENT_REQUIRED

    def __init__(self, *, balance: Decimal, required: Decimal, available: Decimal | None = None):
        self.balance = balance
        self.required = required
        message = f"This needs {credits_str(required)} credits; the balance is {credits_str(balance)}."
        extra = {"balance": credits_str(balance), "required": credits_str(required)}
        if available is not None and available != balance:
            extra["available"] = credits_str(available)
        super().__init__(message, extra=extra)


class UnknownCreditPrice(ApplicationError):
    code = "validation_error"
    status = status.HTTP_400_BAD_REQUEST

    def __init__(self, event_name: str):
        message = f"No active credit price for the event {event_name!r}."
        super().__init__(message, extra={"fields": {"event_name": [message]}})


class TransactionNotReversible(ApplicationError):
    code = "not_reversible"
    status = status.HTTP_409_CONFLICT
    default_message = "Only a consumption can be reversed."


class CreditTransactionNotFound(ApplicationError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    default_message = "Transaction not found."


class CreditPurchaseNotFound(ApplicationError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    default_message = "Credit purchase not found."


class CreditHoldNotFound(ApplicationError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    default_message = "Reservation not found."


class CreditHoldClosed(ApplicationError):
    """The reservation is no longer held (settled, released or expired)."""

    code = "reservation_closed"
    status = status.HTTP_409_CONFLICT

    def __init__(self, hold_status: str):
        super().__init__(f"This reservation is {hold_status}.", extra={"status": hold_status})

"""Stripe's error shapes: one exception per error `type`, rendered as Stripe renders them."""

from __future__ import annotations

from typing import Any

DOC_BASE = "https://docs.stripe.com/error-codes"


class StripeError(Exception):
    """An error answered as `{"error": {...}}` with Stripe's status code for its type."""

    status = 400
    type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        if status is not None:
            self.status = status
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"{DOC_BASE}#{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error.update(self.extra)
        return {"error": error}


class InvalidRequestError(StripeError):
    status = 400
    type = "invalid_request_error"


class ResourceMissing(InvalidRequestError):
    """404: `No such customer: 'cus_x'`."""

    status = 404

    def __init__(self, kind: str, object_id: str, *, param: str | None = "id"):
        super().__init__(f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


class AuthenticationError(StripeError):
    status = 401
    type = "invalid_request_error"


class CardError(StripeError):
    status = 402
    type = "card_error"


class IdempotencyError(StripeError):
    status = 400
    type = "idempotency_error"


class ApiError(StripeError):
    status = 500
    type = "api_error"


def missing(param: str) -> InvalidRequestError:
    return InvalidRequestError(f"Missing required param: {param}.", code="parameter_missing", param=param)


def invalid(param: str, message: str, code: str = "parameter_invalid_empty") -> InvalidRequestError:
    return InvalidRequestError(message, code=code, param=param)

"""One error base and one handler, so every API error has the contract's shape:
`{"error": "<code>", "message": "<human text>", ...details}`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A business error with a stable code, an HTTP status and extra details for the body."""

    code: str = "application_error"
    status: int = status.HTTP_400_BAD_REQUEST
    default_message: str = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ):
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}
        super().__init__(self.message)

    def as_body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.extra}


def _first_field_message(fields: dict[str, list[str]]) -> str | None:
    """The top-level message of a validation error: its first field's first message."""
    for name, messages in fields.items():
        if messages:
            return messages[0] if name == "non_field_errors" else f"{name}: {messages[0]}"
    return None


class ValidationFailed(ApplicationError):
    code = "validation_error"
    status = status.HTTP_400_BAD_REQUEST
    default_message = "Invalid input."

    def __init__(self, message: str | None = None, *, fields: dict[str, list[str]] | None = None):
        fields = fields or {}
        super().__init__(message or _first_field_message(fields), extra={"fields": fields})


class NotFound(ApplicationError):
    code = "not_found"
    status = status.HTTP_404_NOT_FOUND
    default_message = "Not found."


class Conflict(ApplicationError):
    code = "conflict"
    status = status.HTTP_409_CONFLICT


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    default_message = "This idempotency key was already used with a different request."


_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "not_authenticated",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "rate_limited",
    drf_exceptions.ParseError: "parse_error",
}


def _flatten_fields(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(value, dict):
                for sub, msgs in _flatten_fields(value).items():
                    out[f"{key}.{sub}"] = msgs
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                for i, item in enumerate(value):
                    for sub, msgs in _flatten_fields(item).items():
                        out[f"{key}[{i}].{sub}"] = msgs
            elif isinstance(value, list):
                out[key] = [str(v) for v in value]
            else:
                out[key] = [str(value)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(v) for v in detail]}
    return {"non_field_errors": [str(detail)]}


def _validation_body(detail: Any) -> dict[str, Any]:
    fields = _flatten_fields(detail)
    return {"error": "validation_error", "message": _first_field_message(fields), "fields": fields}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: render every error in the contract's shape, never a traceback."""
    if isinstance(exc, ApplicationError):
        return Response(exc.as_body(), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        return Response(_validation_body(detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"error": "request_too_large", "message": "The request body is too large."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response({"error": "bad_request", "message": "Bad request."}, status=400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    # Imported here to break a real cycle: rest_framework.views imports the authentication
    # classes (billing.authentication), which import the services, which import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(
            {"error": "server_error", "message": "An unexpected error occurred. It has been logged."},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = _validation_body(exc.detail)
        return response

    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
    detail = getattr(exc, "detail", None)
    message = str(detail) if detail is not None else "Error."
    body: dict[str, Any] = {"error": code or getattr(exc, "default_code", "error"), "message": message}
    if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
        body["retry_after"] = int(exc.wait)
    response.data = body
    return response


def json_error_view(status_code: int, code: str, message: str):
    def view(request, *args, **kwargs):
        return JsonResponse({"error": code, "message": message}, status=status_code)

    return view


def _wants_json(request) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def handler404(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": "not_found", "message": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if _wants_json(request):
        return JsonResponse(
            {"error": "server_error", "message": "An unexpected error occurred. It has been logged."},
            status=500,
        )
    return defaults.server_error(request)


def handler403(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": "permission_denied", "message": "Permission denied."}, status=403)
    return defaults.permission_denied(request, exception)


def handler400(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"error": "bad_request", "message": "Bad request."}, status=400)
    return defaults.bad_request(request, exception)

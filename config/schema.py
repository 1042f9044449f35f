"""drf-spectacular adjustments: names for the nested Input/Output serializers of the API
views (HackSoft style), the Bearer API-key security scheme, and the error responses of every
operation in the contract's shape (documented here once, not per view)."""

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent


class _BaseAutoSchema(SpectacularAutoSchema):
    def _get_serializer_name(self, serializer, direction, bypass_extensions=False) -> str:
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        qualname = type(serializer).__qualname__
        if "." in qualname:  # `CreditConsumeApi.InputSerializer` -> `CreditConsumeApiInput`
            outer = qualname.rsplit(".", 1)[0].replace(".", "")
            if not name.startswith(outer):
                name = outer + name
        return name


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "billing.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An organization API key: `Authorization: Bearer bk_...`.",
        }


# ------------------------------------------------------------------ error responses, documented once
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: a stable `error` code and a human `message`, plus details "
    "(`fields` for validation errors, `retry_after` for 429, `decline_code` for payments, ...).",
    "properties": {
        "error": {"type": "string", "example": "validation_error"},
        "message": {"type": "string"},
        "fields": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "400 `validation_error`: the messages of each field.",
        },
        "retry_after": {"type": "integer", "description": "429: seconds to wait."},
    },
    "required": ["error", "message"],
    "additionalProperties": True,
}

ERROR_DESCRIPTIONS = {
    "400": "`validation_error` (with `fields`) or `parse_error`: the request is invalid; nothing changed.",
    "401": "`not_authenticated`: no or an invalid session or API key.",
    "402": "`insufficient_credits`, `quota_exceeded` or `payment_failed`; nothing changed.",
    "403": "`permission_denied`: the caller's role or the key's scopes do not allow it.",
    "404": "`not_found`: no such object, or another organization's.",
    "409": "`idempotency_conflict` (the key was used with another body) or another conflict.",
    "413": "`request_too_large`: the body is over the upload limit.",
    "415": "`unsupported_media_type`.",
    "429": "`rate_limited` (with `retry_after`).",
    "502": "`stripe_error`: Stripe refused the request; nothing was charged.",
    "503": "`stripe_unavailable` (or another dependency down): safe to retry with the same key.",
}

# Operations that can answer 402 (money or credits move, or a card is charged or attached).
_PAYS = re.compile(
    r"/credits/(consume|purchase|auto-refill)$|/usage/(track|reservations|reservations/\{[^}]+\}/settle)$"
    r"|/subscription$|/payment-methods$"
)
# Operations that call Stripe in the request (502 `stripe_error` when Stripe refuses, 503 when it
# is down), as "METHOD path". Reads of the local mirror (GET /subscription, /payment-methods,
# /credits/auto-refill, the invoices) and queued work (POST /invoices/{id}/send, /usage/sync) do not.
_STRIPE = re.compile(
    r"^(POST /api/v1/organizations"
    r"|(POST|PATCH) .*/subscription|POST .*/subscription/(cancel|resume)|GET .*/subscription/upcoming-invoice"
    r"|(POST|DELETE) .*/payment-methods(/.*)?"
    r"|POST .*/(checkout-sessions|portal-sessions|payment-links|credits/purchase)"
    r"|PUT .*/credits/auto-refill|GET .*/billing-summary)$"
)


class ErrorResponsesMixin:
    """Adds the error responses an operation can answer, in the contract's shape, to every
    operation (issue 17, Found 8): one place instead of an `extend_schema` per view."""

    def _error_codes(self) -> list[str]:
        method = self.method.upper()
        path = self.path
        writes = method in ("POST", "PUT", "PATCH", "DELETE")
        public = getattr(self.view, "authentication_classes", None) == []
        codes = ["429", "503"]
        if writes or self.view.__class__.__name__.endswith(("ListApi", "Api")):
            codes.append("400")
        if not public:
            codes += ["401", "403"]
        if "{" in path or getattr(self.view, "pagination_class", None):
            codes.append("404")  # a missing object, another tenant's, or a page past the end
        if writes:
            codes += ["409", "413", "415"]
        if writes and _PAYS.search(path):
            codes.append("402")
        if _STRIPE.match(f"{method} {path}"):
            codes.append("502")
        return codes

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        component = ResolvedComponent(
            name="Error", type=ResolvedComponent.SCHEMA, object="Error", schema=ERROR_SCHEMA
        )
        self.registry.register_on_missing(component)
        for code in self._error_codes():
            responses.setdefault(
                code,
                {
                    "content": {"application/json": {"schema": component.ref}},
                    "description": ERROR_DESCRIPTIONS[code],
                },
            )
        return responses


class AutoSchema(ErrorResponsesMixin, _BaseAutoSchema):
    """The project's schema class (`DEFAULT_SCHEMA_CLASS`)."""

"""django-csp's middleware with the policy header built once.

django-csp (4.0) builds the header from the settings on every response: `build_policy` and the
`asdict` of its parts were about 5 % of the CPU of a JSON answer. Here a response that changes
nothing in the policy (no `csp_update`/`csp_replace`/`csp_override` on its view, no nonce used)
gets the header built once per settings value; any other response is built exactly as django-csp
builds it. Which responses get a header, and when, is django-csp's `process_response` unchanged
(`tests/hardening/test_csp_middleware.py` compares the two). The cache is cleared when a
CONTENT_SECURITY_POLICY setting changes (override_settings in tests).
"""

from __future__ import annotations

import http.client

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as _CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_PLAIN: dict[bool, str] = {}  # report_only -> the header of a response that changes nothing
_DEBUG_EXEMPT = (http.client.INTERNAL_SERVER_ERROR, http.client.NOT_FOUND)
_MODES = (
    (False, HEADER, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
    (True, HEADER_REPORT_ONLY, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY"),
)


@receiver(setting_changed)
def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _PLAIN.clear()


def _policy(config, update, replace, nonce, report_only: bool) -> str:
    if config is None and update is None and replace is None and nonce is None:
        policy = _PLAIN.get(report_only)
        if policy is None:
            policy = _PLAIN[report_only] = build_policy(report_only=report_only)
        return policy
    return build_policy(config=config, update=update, replace=replace, nonce=nonce, report_only=report_only)


class CSPMiddleware(_CSPMiddleware):
    def process_response(self, request, response):
        if response.status_code in _DEBUG_EXEMPT and settings.DEBUG:
            return response
        for report_only, header, exempt, setting in _MODES:
            parts = self.get_policy_parts(request=request, response=response, report_only=report_only)
            policy = _policy(parts.config, parts.update, parts.replace, parts.nonce, report_only)
            if policy and header not in response and getattr(response, exempt, False) is False:
                prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ()
                if not request.path_info.startswith(tuple(prefixes)):
                    response[header] = policy
        # As django-csp: a nonce asked for after the header was written is an error.
        if getattr(request, "_csp_nonce", None) is None:
            request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response

"""Content negotiation for the API's hot views: what DRF's `DefaultContentNegotiation` answers,
without parsing the Accept header in the common case.

With no `Accept`, or `Accept: */*` or `application/json`, and no query string (so no `?format=`
override), DRF picks the first renderer, and names its media type: when that renderer is JSON, this
answers the same at once. Anything else goes to DRF's negotiation unchanged (406s included).
"""

from __future__ import annotations

from rest_framework.negotiation import DefaultContentNegotiation

_PLAIN_ACCEPT = frozenset({"", "*/*", "application/json"})


class JsonFirstNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        meta = request.META
        if (
            format_suffix is None
            and renderers
            and renderers[0].media_type == "application/json"
            and meta.get("HTTP_ACCEPT", "") in _PLAIN_ACCEPT
            and not meta.get("QUERY_STRING")
        ):
            return renderers[0], renderers[0].media_type
        return super().select_renderer(request, renderers, format_suffix)

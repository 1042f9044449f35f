"""Metering API requests (the `API_REQUEST` metric) for chosen views.

    class ContactListApi(MeteredApi, OrganizationApi): ...      # DRF views under an organization
    @metered(organization=lambda request, **kw: ...)            # any Django view

A successful response (status below 400) records one event through `usage_record` (no credits,
never refused: pair it with `within_quota("API_REQUEST")` to refuse over-quota calls)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from .services import usage_record

logger = logging.getLogger(__name__)


def _record(organization, metric: str, request, view_name: str) -> None:
    try:
        usage_record(
            organization=organization,
            metric=metric,
            quantity=1,
            resource_type="endpoint",
            resource_id=view_name[:255],
            dimensions={"method": request.method},
        )
    except Exception:  # metering must never break the response it meters
        logger.exception("metering %s failed", metric)


class MeteredApi:
    """A mixin for `OrganizationApi` views: each successful request records `metered_metric`."""

    metered_metric = "API_REQUEST"

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code < 400 and getattr(self, "access", None) is not None:
            _record(self.access.organization, self.metered_metric, request, type(self).__name__)
        return response


def metered(metric: str = "API_REQUEST", *, organization: Callable) -> Callable:
    """A view decorator: each successful response records one `metric` event."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            response = view(request, *args, **kwargs)
            if response.status_code < 400:
                _record(organization(request, *args, **kwargs), metric, request, view.__name__)
            return response

        return wrapped

    return decorator

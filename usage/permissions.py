"""Refuse over-quota work in the SaaS's own views, with the same 402 body as `POST /usage/track`.

    class SendSmsApi(OrganizationApi):
        permission_classes = [IsAuthenticated, within_quota("SMS_SENT")]

    @quota_required("CAMPAIGN_LAUNCHED", organization=lambda request, **kw: request.user.organization)
    def launch(request): ...

Both only read (the counters, or the rollups when Redis is away): they refuse work the limit no
longer allows, they do not count it; the view records the usage afterwards (`usage_record` or
`usage_track`, which is exact under the account lock)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal

from django.core.exceptions import ImproperlyConfigured
from django.http import JsonResponse
from rest_framework.permissions import BasePermission

from billing.models import Organization

from .exceptions import QuotaExceeded
from .services.quotas import quota_check


def _organization_of(request, view=None) -> Organization:
    """The organization an `OrganizationApi` view resolved (or `request.organization`)."""
    access = getattr(request, "access", None) or getattr(view, "access", None)
    if access is not None:
        return access.organization
    organization = getattr(request, "organization", None)
    if organization is None:
        raise LookupError("No organization on the request: pass `organization=` to resolve it.")
    return organization


class WithinQuota(BasePermission):
    """A DRF permission: 402 `quota_exceeded` when the organization's plan does not allow
    `quantity` more of `metric` this period. Build one with `within_quota(metric)`."""

    metric: str = ""
    quantity: Decimal = Decimal(1)

    def has_permission(self, request, view) -> bool:
        getter = getattr(view, "get_quota_organization", None)
        organization = getter(request) if getter else getattr(request, "organization", None)
        if organization is None:
            raise ImproperlyConfigured(
                "WithinQuota needs view.get_quota_organization(request) or request.organization; "
                "OrganizationApi views use QuotaCheckedApi (they resolve the organization after permissions)."
            )
        quota_check(organization=organization, metric=self.metric, quantity=self.quantity)
        return True


def within_quota(metric: str, quantity=1) -> type[WithinQuota]:
    return type(f"WithinQuota_{metric}", (WithinQuota,), {"metric": metric, "quantity": Decimal(quantity)})


class QuotaCheckedApi:
    """A mixin for `OrganizationApi` views: `quota_metric = "SMS_SENT"` refuses over-quota
    requests with 402 once the organization is resolved, before the handler runs."""

    quota_metric: str = ""
    quota_quantity: Decimal = Decimal(1)
    quota_methods: tuple[str, ...] = ("POST", "PUT", "PATCH")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if self.quota_metric and request.method in self.quota_methods:
            quota_check(
                organization=self.organization, metric=self.quota_metric, quantity=self.quota_quantity
            )


def quota_required(
    metric: str, quantity=1, *, organization: Callable[..., Organization] | None = None
) -> Callable:
    """A view decorator: answers 402 with the quota body when the limit is reached."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            org = organization(request, *args, **kwargs) if organization else _organization_of(request)
            try:
                quota_check(organization=org, metric=metric, quantity=Decimal(quantity))
            except QuotaExceeded as exc:
                return JsonResponse(exc.as_body(), status=exc.status)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator

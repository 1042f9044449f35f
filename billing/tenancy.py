"""The organization API base class: every `/api/v1/organizations/<org>/...` view builds on it, so
who may reach an organization, and what it may do there, is decided in this one place (the
table is `billing.access`)."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.views import APIView

from .access import Access, Action
from .models import ApiKey, PlatformKey
from .selectors import organization_access

WRITE_METHODS = ("post", "put", "patch", "delete")


def caller_access(request, org_id) -> Access | None:
    """The access of the request's caller (session, organization key or platform key) to `org_id`."""
    auth = request.auth
    return organization_access(
        org_id=org_id,
        user=None if isinstance(auth, ApiKey | PlatformKey) else request.user,
        api_key=auth if isinstance(auth, ApiKey) else None,
        platform_key=auth if isinstance(auth, PlatformKey) else None,
    )


class OrganizationApi(APIView):
    """An API view under `/api/v1/organizations/<uuid:org>/...`.

    Resolves `org` to an organization the caller can reach, or answers 404 (the same answer for
    a missing organization and for another tenant's). Then checks the action the method performs
    (`actions`, per method; reads default to `Action.READ`) against `billing.access.RULES`: a
    caller without the right gets 403 `permission_denied` before the view runs, so a refusal
    changes nothing. Every write method must name its action: a view that forgets fails at import.
    """

    actions: dict[str, Action] = {}

    access: Access

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        missing = [m.upper() for m in WRITE_METHODS if hasattr(cls, m) and m.upper() not in cls.actions]
        if missing:
            raise TypeError(f"{cls.__name__} must name the action of {', '.join(missing)} in `actions`.")

    @classmethod
    def action_for(cls, method: str) -> Action:
        return cls.actions.get(method.upper(), Action.READ)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        access = caller_access(request, kwargs.get("org"))
        if access is None:
            raise exceptions.NotFound("Organization not found.")
        action = self.action_for(request.method)
        if not access.allows(action):
            raise exceptions.PermissionDenied(access.refusal(action))
        self.access = access
        request.access = access

    @property
    def organization(self):
        return self.access.organization

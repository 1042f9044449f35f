"""The organization API base class: every `/api/v1/organizations/<org>/...` view builds on it, so
who may reach an organization, and with which role, is decided in this one place."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.views import APIView

from .models import ApiKey, Role
from .selectors import Access, organization_access


class OrganizationApi(APIView):
    """An API view under `/api/v1/organizations/<uuid:org>/...`.

    Resolves `org` to an organization the caller can act on, or answers 404 (the same answer
    for a missing organization and for another tenant's). Then checks the caller's role:
    `required_role` (for every method) or `required_roles` (per method) name the lowest role
    allowed; a lower role gets 403.
    """

    required_role: str = Role.MEMBER
    required_roles: dict[str, str] = {}

    access: Access

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        access = organization_access(
            org_id=kwargs.get("org"), user=None if api_key else request.user, api_key=api_key
        )
        if access is None:
            raise exceptions.NotFound("Organization not found.")
        required = self.required_roles.get(request.method, self.required_role)
        if not access.has_role(required):
            raise exceptions.PermissionDenied(
                f"This needs the {required} role or higher in this organization."
            )
        self.access = access
        request.access = access

    @property
    def organization(self):
        return self.access.organization

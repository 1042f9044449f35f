"""Reads for tenancy. Every organization lookup goes through `organization_for_actor`,
so a caller only ever sees organizations it belongs to."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import QuerySet

from .models import ROLE_RANK, ApiKey, Membership, Organization, Role


@dataclass(frozen=True)
class Access:
    """Who is acting on an organization, and with which role."""

    organization: Organization
    role: str
    user_id: int | None
    api_key_id: uuid.UUID | None = None
    is_staff: bool = False

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]


def organization_list_for_user(*, user) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).order_by("name", "id")


def organization_access(*, org_id, user=None, api_key: ApiKey | None = None) -> Access | None:
    """The caller's access to the organization `org_id`, or None (the caller sees a 404)."""
    try:
        org_uuid = org_id if isinstance(org_id, uuid.UUID) else uuid.UUID(str(org_id))
    except (TypeError, ValueError):
        return None
    if api_key is not None:
        if api_key.organization_id != org_uuid or api_key.revoked_at is not None:
            return None
        return Access(
            organization=api_key.organization, role=api_key.role, user_id=None, api_key_id=api_key.pk
        )
    if user is None or not user.is_authenticated:
        return None
    membership = (
        Membership.objects.select_related("organization").filter(user=user, organization_id=org_uuid).first()
    )
    if membership is not None:
        return Access(
            organization=membership.organization,
            role=membership.role,
            user_id=user.pk,
            is_staff=user.is_staff,
        )
    if user.is_staff:
        # Support staff act on any organization with the admin role.
        organization = Organization.objects.filter(pk=org_uuid).first()
        if organization is not None:
            return Access(organization=organization, role=Role.ADMIN, user_id=user.pk, is_staff=True)
    return None


def api_key_get_active(*, hashed_key: str) -> ApiKey | None:
    return (
        ApiKey.objects.select_related("organization")
        .filter(hashed_key=hashed_key, revoked_at__isnull=True)
        .first()
    )


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("created_at", "id")
    )


def api_key_list(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at", "id")


def api_key_get(*, organization: Organization, key_id) -> ApiKey | None:
    return ApiKey.objects.filter(organization=organization, pk=key_id).first()


def membership_role(*, organization: Organization, user) -> str | None:
    return (
        Membership.objects.filter(organization=organization, user=user).values_list("role", flat=True).first()
    )


@dataclass(frozen=True)
class BillingState:
    plan: str
    status: str | None


def organization_billing_state(*, organization: Organization) -> BillingState:
    """The organization's plan code and subscription status. Until a paid subscription exists
    an organization is on the free plan, which is always active."""
    return BillingState(plan="free", status="active")

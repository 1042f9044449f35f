"""Writes for tenancy: organizations, memberships, API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.exceptions import ValidationFailed

from .models import ApiKey, Membership, Organization, Role

User = get_user_model()


def organization_create(
    *, name: str, billing_email: str, owner: AbstractBaseUser | None = None
) -> Organization:
    """Create an organization and make `owner` its owner."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed(
            "name: This field may not be blank.", fields={"name": ["This field may not be blank."]}
        )
    with transaction.atomic():
        organization = Organization.objects.create(name=name, billing_email=billing_email)
        if owner is not None:
            Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    return organization


def membership_set(*, organization: Organization, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(fields={"role": [f"Unknown role {role!r}."]})
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


def user_get_or_create(*, email: str, password: str | None = None) -> tuple[AbstractBaseUser, bool]:
    """Users log in with their e-mail as username."""
    email = email.strip().lower()
    user = User.objects.filter(username=email).first()
    if user is not None:
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user, False
    user = User(username=email, email=email)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user, True


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    raw_key: str  # shown once; never stored


def api_key_create(
    *,
    organization: Organization,
    name: str,
    role: str = Role.ADMIN,
    created_by: AbstractBaseUser | None = None,
) -> CreatedApiKey:
    if role == Role.OWNER or role not in Role.values:
        raise ValidationFailed(fields={"role": ["An API key's role is admin, billing or member."]})
    raw = ApiKey.PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name or "API key",
        role=role,
        prefix=raw[:10],
        hashed_key=api_key_hash(raw),
        created_by=created_by,
    )
    return CreatedApiKey(api_key=api_key, raw_key=raw)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Idempotent: revoking a revoked key keeps its first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey, min_interval_seconds: int = 60) -> None:
    """Record use without a write on every request: at most one update per interval."""
    now = timezone.now()
    last = api_key.last_used_at
    if last is None or (now - last).total_seconds() >= min_interval_seconds:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now

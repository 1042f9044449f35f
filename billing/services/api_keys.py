"""API keys: shown once, stored as a SHA-256 hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from config.exceptions import ValidationFailed

from ..models import ApiKey, Organization, Role


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

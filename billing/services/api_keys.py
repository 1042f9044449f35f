"""API keys (one organization's) and platform keys (the operator's, for any organization, by
scope): shown once, stored as a SHA-256 hash, revocable, with the time of last use."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.utils import timezone

from config.exceptions import ValidationFailed

from .. import key_cache
from ..models import ApiKey, Organization, PlatformKey, PlatformScope, Role


def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    raw_key: str  # shown once; never stored


@dataclass(frozen=True)
class CreatedPlatformKey:
    platform_key: PlatformKey
    raw_key: str  # shown once; never stored


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def api_key_create(
    *,
    organization: Organization,
    name: str,
    role: str = Role.ADMIN,
    created_by: AbstractBaseUser | None = None,
) -> CreatedApiKey:
    if role == Role.OWNER or role not in Role.values:
        raise ValidationFailed(fields={"role": ["An API key's role is admin, billing or member."]})
    raw = _new_secret(ApiKey.PREFIX)
    api_key = ApiKey.objects.create(
        organization=organization,
        name=(name or "API key")[:100],
        role=role,
        prefix=raw[:10],
        hashed_key=api_key_hash(raw),
        created_by=created_by,
    )
    return CreatedApiKey(api_key=api_key, raw_key=raw)


def platform_key_create(
    *, name: str, scopes: list[str], created_by: AbstractBaseUser | None = None
) -> CreatedPlatformKey:
    """A key for the operator's back end. It can do only what its scopes name."""
    unknown = sorted(set(scopes) - set(PlatformScope.values))
    if unknown or not scopes:
        message = f"Unknown scopes: {', '.join(unknown)}." if unknown else "Give at least one scope."
        raise ValidationFailed(fields={"scopes": [message + f" Known: {', '.join(PlatformScope.values)}."]})
    raw = _new_secret(PlatformKey.PREFIX)
    platform_key = PlatformKey.objects.create(
        name=(name or "Platform key")[:100],
        scopes=sorted(set(scopes)),
        prefix=raw[:12],
        hashed_key=api_key_hash(raw),
        created_by=created_by,
    )
    return CreatedPlatformKey(platform_key=platform_key, raw_key=raw)


def api_key_revoke(*, api_key: ApiKey | PlatformKey) -> ApiKey | PlatformKey:
    """Idempotent: revoking a revoked key keeps its first revocation time. Works for both kinds.
    This process forgets the key at once; other processes within `API_KEY_CACHE_SECONDS`."""
    type(api_key).objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    key_cache.forget(api_key.hashed_key)
    return api_key


def api_key_touch(*, api_key: ApiKey | PlatformKey, min_interval_seconds: float | None = None) -> bool:
    """Record use without a write on every request: at most one write per key and interval
    (`API_KEY_TOUCH_SECONDS`, default 60) in this process, and none when another process wrote
    within the interval. Answers whether this call wrote."""
    interval = settings.API_KEY_TOUCH_SECONDS if min_interval_seconds is None else min_interval_seconds
    now = timezone.now()
    last = api_key.last_used_at
    if last is not None and (now - last).total_seconds() < interval:
        return False
    recent = now - timedelta(seconds=interval)
    written = (
        type(api_key)
        .objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=recent), pk=api_key.pk)
        .update(last_used_at=now)
    )
    api_key.last_used_at = now
    return bool(written)

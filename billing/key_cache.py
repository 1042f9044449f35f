"""A per-process cache of the active API and platform keys, by the SHA-256 of the key.

Authenticating a request with a key found here costs no database round trip. An entry lives
`API_KEY_CACHE_SECONDS` (default 10 s; 0 turns the cache off) from the moment it was read from
the database, so a revocation, a deleted key or a changed role or scope takes effect in every
process within that bound; in the process that revokes, edits or deletes the key (the API, the
admin, a command) at once, since `api_key_revoke` and the model signals drop the entry.

Only active keys are cached (an unknown or revoked key always asks the database), at most
`API_KEY_CACHE_SIZE` of them (least recently used out first). The entry keeps the key's
columns, never the raw key and never the organization: the organization's row (its plan, its
subscription) is read fresh by whoever needs it (`billing.selectors.organization_lazy`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache
from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import ApiKey, PlatformKey

_lock = threading.Lock()
_cache: TTLCache | None = None
_config: tuple[float, int] | None = None


@dataclass
class KeyEntry:
    """The columns of one active key, as read from the database."""

    model: type[ApiKey] | type[PlatformKey]
    values: dict
    last_used_at: datetime | None  # the last write of `last_used_at` this process knows of

    def instance(self) -> ApiKey | PlatformKey:
        """A fresh model instance (never shared between requests)."""
        key = self.model(**self.values, last_used_at=self.last_used_at)
        key._state.adding = False
        key._state.db = "default"
        return key


FIELDS = {
    ApiKey: ("id", "organization_id", "name", "role", "prefix", "hashed_key", "created_at", "revoked_at"),
    PlatformKey: ("id", "name", "scopes", "prefix", "hashed_key", "created_at", "revoked_at"),
}


def _store() -> TTLCache | None:
    global _cache, _config
    config = (float(settings.API_KEY_CACHE_SECONDS), int(settings.API_KEY_CACHE_SIZE))
    if config != _config:  # first use, or the settings changed (tests)
        with _lock:
            if config != _config:
                _cache = TTLCache(maxsize=config[1], ttl=config[0]) if config[0] > 0 else None
                _config = config
    return _cache


def get(hashed_key: str) -> KeyEntry | None:
    cache = _store()
    if cache is None:
        return None
    with _lock:
        return cache.get(hashed_key)


def put(key: ApiKey | PlatformKey) -> KeyEntry:
    entry = KeyEntry(
        model=type(key),
        values={name: getattr(key, name) for name in FIELDS[type(key)]},
        last_used_at=key.last_used_at,
    )
    cache = _store()
    if cache is not None and key.revoked_at is None:
        with _lock:
            cache[key.hashed_key] = entry
    return entry


def forget(hashed_key: str) -> None:
    cache = _store()
    if cache is not None:
        with _lock:
            cache.pop(hashed_key, None)


def clear() -> None:
    cache = _store()
    if cache is not None:
        with _lock:
            cache.clear()


@receiver([post_save, post_delete], sender=ApiKey)
@receiver([post_save, post_delete], sender=PlatformKey)
def _forget_changed_key(sender, instance, **kwargs) -> None:
    """A key saved (its role, scopes, revocation) or deleted through the ORM, e.g. in the admin."""
    forget(instance.hashed_key)

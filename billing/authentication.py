"""`Authorization: Bearer <key>` for DRF: an organization's API key (`bk_...`), which acts for
its one organization, or a platform key (`bpk_...`), which acts for any organization within its
scopes. Either way the request's `auth` is the key row."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from . import key_cache
from .models import ApiKey, PlatformKey
from .selectors import api_key_get_active, platform_key_get_active
from .services import api_key_hash, api_key_touch


class KeyUser(AnonymousUser):
    """The request's user when a key authenticates: authenticated, but no person."""

    def __init__(self, key: ApiKey | PlatformKey):
        self.key = key
        kind = "platform-key" if isinstance(key, PlatformKey) else "api-key"
        self.pk = self.id = f"{kind}:{key.pk}"
        self.username = f"{kind}:{key.prefix}"

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: expected 'Bearer <key>'.")
        raw = parts[1]
        hashed = api_key_hash(raw)
        # Active keys are kept per process for API_KEY_CACHE_SECONDS (`billing.key_cache`).
        entry = key_cache.get(hashed)
        if entry is None:
            found = (
                platform_key_get_active(hashed_key=hashed)
                if raw.startswith(PlatformKey.PREFIX)
                else api_key_get_active(hashed_key=hashed)
            )
            if found is None:
                raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
            entry = key_cache.put(found)
        key = entry.instance()
        api_key_touch(api_key=key)  # at most one write per API_KEY_TOUCH_SECONDS
        entry.last_used_at = key.last_used_at
        return KeyUser(key), key

    def authenticate_header(self, request) -> str:
        return self.keyword

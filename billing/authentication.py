"""`Authorization: Bearer <api key>` for DRF. The key acts for its one organization."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from .models import ApiKey
from .selectors import api_key_get_active
from .services import api_key_hash, api_key_touch


class ApiKeyUser(AnonymousUser):
    """The request's user when an API key authenticates: authenticated, but no person."""

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.pk = self.id = f"apikey:{api_key.pk}"
        self.username = f"api-key:{api_key.prefix}"

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
        api_key = api_key_get_active(hashed_key=api_key_hash(parts[1]))
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        api_key_touch(api_key=api_key)
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        return self.keyword

"""How the API writes a moment, for the answers built without DRF's field machinery."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings

assert settings.TIME_ZONE == "UTC", "the API's moments are written in UTC, the project's time zone"


def moment_str(value: datetime | None) -> str | None:
    """An aware moment as the API writes it: ISO 8601 in UTC, `Z` for the offset, which is what
    `serializers.DateTimeField().to_representation` answers in the project's time zone (UTC, and no
    request activates another), without its lookups of the current zone and the settings."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("the API writes aware moments only")
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text

"""The order in which a consumption draws from an account's grants: the one place it is decided.

By source, in the order of `settings.CREDITS_CONSUMPTION_ORDER` (default: purchase, refund,
subscription, promo, manual; sources not named come last); within a source, soonest expiry
first (never-expiring last), then oldest first, then by id so the order is total. Purchased
credits go first as the seeds' rule says; refund grants hold credits given back for consumptions
that were reversed, which were paid for like purchased ones; manual grants (staff goodwill,
adjustments) are kept longest.

Both paths of the ledger use it: the ORM path (`credits.services.ledger.live_grants`) through
`grant_ordering()`; the SQL hot path (`credits.hot_path`) passes `source_order()` to its
function, which orders the same way (migration 0011: `array_position` over the sources).
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.db.models import Case, F, IntegerField, OrderBy, Value, When

from .models import CreditSource


def source_order() -> tuple[str, ...]:
    """The configured sources, known ones only (the SQL below is built from them)."""
    return _known_sources(tuple(settings.CREDITS_CONSUMPTION_ORDER))


@lru_cache(maxsize=8)
def _known_sources(configured: tuple[str, ...]) -> tuple[str, ...]:
    # Cached by the setting's value (`CreditSource.values` builds a list on every access): a
    # consumption asks on every call, and tests change the setting.
    known = set(CreditSource.values)
    return tuple(s for s in configured if s in known)


def grant_ordering() -> list:
    """`order_by(*grant_ordering())` for a queryset of `CreditGrant`."""
    order = source_order()
    rank = Case(
        *[When(source=source, then=Value(i)) for i, source in enumerate(order)],
        default=Value(len(order)),
        output_field=IntegerField(),
    )
    return [rank, OrderBy(F("expires_at"), nulls_last=True), "created_at", "id"]

"""Row locks for the ledger: every mutation locks the organization's `CreditAccount` first.

More than one account is locked in primary-key order, so two paths can never wait on each
other (the deadlock Saleor's `lock_objects.py` avoids the same way). Must run inside
`transaction.atomic`.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from .models import CreditAccount


def _locked():
    return CreditAccount.objects.select_for_update(of=("self",)).select_related("auto_refill__pack")


def account_lock(*, organization_id) -> CreditAccount:
    """Lock the organization's account, creating it first when it does not exist.

    Two first grants racing: both INSERT ... ON CONFLICT DO NOTHING; the second waits on the
    unique index until the first commits, then both lock the one row and both land.
    """
    assert transaction.get_connection().in_atomic_block, "account_lock needs transaction.atomic"
    account = _locked().filter(organization_id=organization_id).first()
    if account is None:
        CreditAccount.objects.bulk_create(
            [CreditAccount(organization_id=organization_id)], ignore_conflicts=True
        )
        account = _locked().get(organization_id=organization_id)
    return account


def accounts_lock(*, account_ids: Iterable[int]) -> list[CreditAccount]:
    """Lock existing accounts in primary-key order."""
    assert transaction.get_connection().in_atomic_block, "accounts_lock needs transaction.atomic"
    return list(_locked().filter(pk__in=sorted(set(account_ids))).order_by("pk"))

"""Writes of the invoices app, one module per topic; this package re-exports the public ones.

- `stripe_sync`: Stripe invoices kept whole (webhooks, the full re-read, the backfill).
"""

from .stripe_sync import (
    BackfillResult,
    SyncResult,
    stripe_invoice_forget_draft,
    stripe_invoice_save,
    stripe_invoice_sync,
    stripe_invoice_sync_from_mirror,
    stripe_invoices_backfill,
)

__all__ = [
    "BackfillResult",
    "SyncResult",
    "stripe_invoice_forget_draft",
    "stripe_invoice_save",
    "stripe_invoice_sync",
    "stripe_invoice_sync_from_mirror",
    "stripe_invoices_backfill",
]

"""Writes of the invoices app, one module per topic; this package re-exports the public ones.

- `stripe_sync`: Stripe invoices kept whole (webhooks, the full re-read, the backfill).
- `sending`: e-mailing an invoice (logged, sent by a task, at least once).
- `payment_links`: one-off amounts billed through a Stripe-hosted invoice.
- `statements`: generated statements of a period (credits, usage), numbered without gaps.
- `actions`: staff actions (resend, download, void, mark uncollectible), each audited.
- `demo`: the demo organization's invoices for `make run`.
- `period_close`: last month's statement for every organization, one task per chunk of them.
"""

from .actions import (
    invoice_action_log,
    invoice_download_log,
    invoice_mark_uncollectible,
    invoice_resend,
    invoice_void,
)
from .demo import DemoInvoices, demo_invoices_seed
from .payment_links import PaymentLinkResult, payment_link_create
from .period_close import (
    period_close_dispatch,
    period_close_missing,
    period_close_progress,
    period_close_run,
    previous_month,
    statement_close_organization,
    statements_close_chunk,
)
from .sending import (
    invoice_send_deliver,
    invoice_send_pending,
    invoice_send_queue,
    invoice_sends_dispatch_due,
)
from .statements import (
    StatementDraft,
    statement_draft_build,
    statement_drafts_build,
    statement_generate,
    statement_number,
    statements_issue,
)
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
    "DemoInvoices",
    "PaymentLinkResult",
    "StatementDraft",
    "SyncResult",
    "demo_invoices_seed",
    "invoice_action_log",
    "invoice_download_log",
    "invoice_mark_uncollectible",
    "invoice_resend",
    "invoice_send_deliver",
    "invoice_send_pending",
    "invoice_send_queue",
    "invoice_sends_dispatch_due",
    "invoice_void",
    "payment_link_create",
    "period_close_dispatch",
    "period_close_missing",
    "period_close_progress",
    "period_close_run",
    "previous_month",
    "statement_close_organization",
    "statement_draft_build",
    "statement_drafts_build",
    "statement_generate",
    "statement_number",
    "statements_close_chunk",
    "statements_issue",
    "stripe_invoice_forget_draft",
    "stripe_invoice_save",
    "stripe_invoice_sync",
    "stripe_invoice_sync_from_mirror",
    "stripe_invoices_backfill",
]

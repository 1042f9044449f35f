"""`manage.py reconcile`: check every invariant of the credit ledger, and that the billing state
agrees with Stripe; exit 1 with a report on any drift. The run is stored (`ReconcileRun`)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from credits.services import reconcile_run, stripe_state_restore


class Command(BaseCommand):
    help = (
        "Check the credit ledger: balance == sum(transactions) == sum(remaining of grants) minus the "
        "overdraft in use, the balance_after chain, 0 <= remaining <= amount, the overdraft limit, one "
        "key one effect, paid purchases granted, no purchase left pending or processing over 30 minutes, "
        "and the append-only trigger; then Stripe drift: "
        "subscription statuses and purchases against Stripe, and the checks other apps register "
        "(usage sent to Stripe meters against the meters' summaries). Exit 1 on any drift. "
        "The result is stored as a reconcile run (admin: Credits > Reconcile runs); drift e-mails staff."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", action="append", help="Only this organization id (repeatable).")
        parser.add_argument("--no-stripe", action="store_true", help="Check the ledger only, without Stripe.")
        parser.add_argument(
            "--repair",
            action="store_true",
            help="First do what lost webhooks would have done, from Stripe's state (statuses, paid "
            "purchases, subscription credits), then check.",
        )

    def handle(self, *args, **options):
        ids = options.get("organization")
        if options.get("repair") and not options["no_stripe"]:
            for line in stripe_state_restore(organization_ids=ids):
                self.stdout.write(f"repaired: {line}")
        run = reconcile_run(
            trigger="command",
            requested_by="manage.py reconcile",
            organization_ids=ids,
            with_stripe=not options["no_stripe"],
        )
        if not run.drifts:
            self.stdout.write(self.style.SUCCESS(f"{run.summary}: no drift"))
            return
        self.stdout.write(self.style.ERROR(f"{run.summary}: {len(run.drifts)} drift(s)"))
        for drift in run.drifts:
            self.stdout.write(f"  {drift}")
        sys.exit(1)

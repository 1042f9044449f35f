"""`manage.py reconcile`: check every invariant of the credit ledger, and that the billing state
agrees with Stripe; exit 1 with a report on any drift."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from billing.services import billing_stripe_drift_list
from config import reconcile
from config.exceptions import ApplicationError
from credits.selectors import credit_purchases_stuck_list, ledger_drift_list
from credits.services import credit_purchases_stripe_drift_list, stripe_state_restore


class Command(BaseCommand):
    help = (
        "Check the credit ledger: balance == sum(transactions) == sum(remaining of grants) minus the "
        "overdraft in use, the balance_after chain, 0 <= remaining <= amount, the overdraft limit, one "
        "key one effect, paid purchases granted, no purchase left pending or processing over 30 minutes, "
        "and the append-only trigger; then Stripe drift: "
        "subscription statuses and purchases against Stripe, and the checks other apps register "
        "(usage sent to Stripe meters against the meters' summaries). Exit 1 on any drift."
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
        report = ledger_drift_list(organization_ids=ids)
        drifts = [str(d) for d in report.drifts]
        drifts += credit_purchases_stuck_list(organization_ids=ids)
        summary = f"credits: {report.accounts} accounts, {report.transactions} ledger rows"
        if not options["no_stripe"]:
            try:
                stripe_drifts = billing_stripe_drift_list(organization_ids=ids)
                stripe_drifts += credit_purchases_stripe_drift_list(organization_ids=ids)
            except ApplicationError as exc:
                stripe_drifts = [f"Stripe could not be checked: {exc.message}"]
            drifts += stripe_drifts
            summary += "; Stripe: subscriptions and purchases compared"
        for check in reconcile.registered(stripe=not options["no_stripe"]):
            try:
                drifts += check.run(organization_ids=ids)
            except ApplicationError as exc:
                drifts.append(f"{check.name} could not be checked: {exc.message}")
            summary += f"; {check.name}"
        if not drifts:
            self.stdout.write(self.style.SUCCESS(f"{summary}: no drift"))
            return
        self.stdout.write(self.style.ERROR(f"{summary}: {len(drifts)} drift(s)"))
        for drift in drifts:
            self.stdout.write(f"  {drift}")
        sys.exit(1)

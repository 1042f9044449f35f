"""`manage.py reconcile`: check every invariant of the credit ledger; exit 1 with a report on drift."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from credits.selectors import ledger_drift_list


class Command(BaseCommand):
    help = (
        "Check the credit ledger: balance == sum(transactions) == sum(remaining of grants) minus the "
        "overdraft in use, the balance_after chain, 0 <= remaining <= amount, the overdraft limit, one "
        "key one effect, paid purchases granted, and the append-only trigger. Exit 1 on any drift."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", action="append", help="Only this organization id (repeatable).")

    def handle(self, *args, **options):
        report = ledger_drift_list(organization_ids=options.get("organization"))
        summary = f"credits: {report.accounts} accounts, {report.transactions} ledger rows"
        if report.clean:
            self.stdout.write(self.style.SUCCESS(f"{summary}: no drift"))
            return
        self.stdout.write(self.style.ERROR(f"{summary}: {len(report.drifts)} drift(s)"))
        for drift in report.drifts:
            self.stdout.write(f"  {drift}")
        sys.exit(1)

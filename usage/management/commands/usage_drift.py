"""`manage.py usage_drift`: usage sent to Stripe meters against the meters' own summaries, and
the rollups against the raw events; exit 1 with a report on any drift."""

from __future__ import annotations

import sys
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from config.exceptions import ApplicationError
from usage.services import usage_meter_drift_list, usage_rollup_drift_list


class Command(BaseCommand):
    help = (
        "Compare, for the current period of every metered subscription, what Stripe's meters summed with "
        "what was sent from here (and usage above the limit not reported yet); and the hourly rollups with "
        "the raw events of the last --days days. Exit 1 on any drift."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", action="append", help="Only this organization id (repeatable).")
        parser.add_argument(
            "--days", type=int, default=2, help="Rollups checked against raw events (default 2)."
        )
        parser.add_argument("--no-stripe", action="store_true", help="Only the rollups.")

    def handle(self, *args, **options):
        ids = options.get("organization")
        drifts = usage_rollup_drift_list(
            since=timezone.now() - timedelta(days=options["days"]), organization_ids=ids
        )
        summary = f"usage: rollups of the last {options['days']} day(s) against the events"
        if not options["no_stripe"]:
            try:
                drifts += usage_meter_drift_list(organization_ids=ids)
            except ApplicationError as exc:
                drifts.append(f"Stripe could not be checked: {exc.message}")
            summary += "; meter usage against Stripe's summaries"
        if not drifts:
            self.stdout.write(self.style.SUCCESS(f"{summary}: no drift"))
            return
        self.stdout.write(self.style.ERROR(f"{summary}: {len(drifts)} drift(s)"))
        for drift in drifts:
            self.stdout.write(f"  {drift}")
        sys.exit(1)

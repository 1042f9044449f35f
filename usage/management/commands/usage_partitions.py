"""`manage.py usage_partitions`: list the monthly partitions of the events table, create the
months ahead (as the daily beat task does), or detach an old month."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from usage.partitions import partition_detach, partitions_ensure, partitions_list


class Command(BaseCommand):
    help = (
        "List the events table's monthly partitions and create the ones around now that are missing; "
        "--detach YYYY-MM takes an old month out of the table (its rollups stay, so reads stay right)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=3, help="Months ahead to create (default 3).")
        parser.add_argument("--detach", metavar="YYYY-MM", help="Detach this month's partition.")

    def handle(self, *args, **options):
        if options["detach"]:
            try:
                month = datetime.strptime(options["detach"], "%Y-%m").replace(tzinfo=UTC)
            except ValueError:
                raise CommandError("--detach takes a month as YYYY-MM.") from None
            name = partition_detach(month=month)
            self.stdout.write(f"detached {name}" if name else f"no partition for {options['detach']}")
            return
        for name in partitions_ensure(months_ahead=options["ahead"]):
            self.stdout.write(f"created {name}")
        self.stdout.write("partitions: " + ", ".join(partitions_list()))

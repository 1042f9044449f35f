from django.core.management.base import BaseCommand, CommandError

from billing.models import Organization
from config.exceptions import ApplicationError
from invoices.services import stripe_invoices_backfill


class Command(BaseCommand):
    help = (
        "Read every Stripe invoice of the organizations' customers and store each whole (every line). "
        "Safe to run again and while webhooks arrive."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--organization", action="append", default=[], help="An organization id (repeatable)."
        )

    def handle(self, *args, **options):
        organizations = Organization.objects.order_by("created_at", "id")
        if options["organization"]:
            organizations = organizations.filter(pk__in=options["organization"])
        try:
            result = stripe_invoices_backfill(organizations=organizations)
        except ApplicationError as exc:
            raise CommandError(f"Stripe: {exc.message}") from exc
        self.stdout.write(f"{result.invoices} invoices of {result.organizations} organizations stored.")

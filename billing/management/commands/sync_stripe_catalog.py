from django.core.management.base import BaseCommand, CommandError

from billing.services import stripe_catalog_sync
from config.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create or update the Stripe products and prices of the plans (idempotent, by lookup key)."

    def handle(self, *args, **options):
        try:
            result = stripe_catalog_sync()
        except ApplicationError as exc:
            raise CommandError(f"Stripe catalogue sync failed: {exc.message}") from exc
        for line in result.lines:
            self.stdout.write(f"  {line}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalogue in sync: {result.products_created} product(s) created, {result.products_updated} "
                f"updated; {result.prices_created} price(s) created, {result.prices_updated} updated; "
                f"{result.unchanged} unchanged."
            )
        )

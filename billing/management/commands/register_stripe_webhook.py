from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from billing.services import webhook_endpoint_register
from config.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Register <base-url>/stripe/webhook/<uuid>/ with Stripe for every event (once) and store its secret."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=None, help="Defaults to SITE_URL.")

    def handle(self, *args, **options):
        base_url = options["base_url"] or settings.SITE_URL
        try:
            endpoint = webhook_endpoint_register(base_url=base_url)
        except ApplicationError as exc:
            raise CommandError(f"Stripe refused the webhook endpoint: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"Stripe sends webhooks to {endpoint.url}"))

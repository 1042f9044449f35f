import json

from django.core.management.base import BaseCommand, CommandError

from billing.services import api_key_create, organization_create, user_get_or_create
from config.exceptions import ApplicationError


class Command(BaseCommand):
    help = "Create an organization with an owner; prints JSON {organization_id, owner_email, api_key?}."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner-email", required=True)
        parser.add_argument("--owner-password", default=None)
        parser.add_argument("--billing-email", default=None, help="Defaults to the owner's e-mail.")
        parser.add_argument(
            "--api-key", action="store_true", help="Also create an admin API key (shown once)."
        )

    def handle(self, *args, **options):
        email = options["owner_email"].strip().lower()
        try:
            # No transaction around it: organization_create calls Stripe, and undoes its own
            # Stripe customer if saving fails.
            owner, _ = user_get_or_create(email=email, password=options["owner_password"])
            organization = organization_create(
                name=options["name"], billing_email=options["billing_email"] or email, owner=owner
            )
            out = {"organization_id": str(organization.id), "owner_email": email}
            if options["api_key"]:
                out["api_key"] = api_key_create(
                    organization=organization, name="created by create_organization", created_by=owner
                ).raw_key
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(out))

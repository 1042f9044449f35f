from django.core.management.base import BaseCommand, CommandError

from billing.models import Organization
from config.exceptions import ApplicationError
from invoices.services import demo_invoices_seed

DEMO_ORG = "Demo Organization"


class Command(BaseCommand):
    help = (
        "Add the demo invoices (Stripe invoices stored whole, an open payment link, a statement of this "
        "month) to an organization (default: the demo organization). `seed_demo` does this itself."
    )

    def add_arguments(self, parser):
        parser.add_argument("--organization", default=None, help="An organization id.")
        parser.add_argument("--no-stripe", action="store_true", help="Only the credits and the statement.")

    def handle(self, *args, **options):
        organizations = Organization.objects.all()
        if options["organization"]:
            organization = organizations.filter(pk=options["organization"]).first()
        else:
            organization = organizations.filter(name=DEMO_ORG).order_by("created_at").first()
        if organization is None:
            raise CommandError("No such organization (run seed_demo first).")
        try:
            seeded = demo_invoices_seed(organization=organization, with_stripe=not options["no_stripe"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"{seeded.stripe_invoices} Stripe invoice(s), statement {seeded.statement.number} for "
            f"{organization.name}: /billing/{organization.pk}/invoices/"
        )

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from billing.models import Membership, Organization, Role
from billing.services import organization_create, user_get_or_create

DEMO_ORG = "Demo Organization"
DEMO_OWNER = "owner@demo.example"
DEMO_STAFF = "staff@demo.example"


class Command(BaseCommand):
    help = "Create (once) the demo organization, its owner and a staff login; prints the logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--password", default=None, help="Defaults to DEMO_PASSWORD or 'demo-billing-2026'."
        )

    def handle(self, *args, **options):
        password = options["password"] or getattr(settings, "DEMO_PASSWORD", "demo-billing-2026")
        with transaction.atomic():
            owner, _ = user_get_or_create(email=DEMO_OWNER, password=password)
            staff, _ = user_get_or_create(email=DEMO_STAFF, password=password)
            get_user_model().objects.filter(pk=staff.pk).update(is_staff=True, is_superuser=True)
            organization = Organization.objects.filter(
                memberships__user=owner, name=DEMO_ORG
            ).first() or organization_create(name=DEMO_ORG, billing_email="billing@demo.example", owner=owner)
            Membership.objects.get_or_create(
                user=owner, organization=organization, defaults={"role": Role.OWNER}
            )
        self.stdout.write(
            self.style.SUCCESS("Demo ready.")
            + f"\n  organization: {organization.name} ({organization.id})"
            + f"\n  owner login:  {DEMO_OWNER} / {password}   (organization owner)"
            + f"\n  staff login:  {DEMO_STAFF} / {password}   (admin at /admin/)"
        )

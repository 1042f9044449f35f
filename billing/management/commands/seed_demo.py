from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from billing import stripe_api
from billing.models import Membership, Organization, PlatformKey, PlatformScope, Role
from billing.selectors import organization_customer_get, subscription_current_get
from billing.services import (
    api_key_revoke,
    organization_billing_refresh,
    organization_create,
    payment_method_attach,
    platform_key_create,
    stripe_catalog_sync,
    subscription_create,
    user_get_or_create,
    webhook_endpoint_register,
    webhook_endpoints_stale_remove,
)
from billing.signals import demo_seeded
from config.exceptions import ApplicationError

DEMO_ORG = "Demo Organization"
DEMO_OWNER = "owner@demo.example"
DEMO_STAFF = "staff@demo.example"
DEMO_PLAN = ("professional", "month")
DEMO_PLATFORM_KEY = "demo back end"


class Command(BaseCommand):
    help = (
        "Create (once) the demo organization on a paid plan with a card, its owner and a staff login, "
        "and register this site's webhook endpoint with Stripe; prints the logins."
    )

    def add_arguments(self, parser):
        parser.add_argument("--password", default=None, help="Defaults to DEMO_PASSWORD.")
        parser.add_argument("--no-stripe", action="store_true", help="Only the logins and the organization.")

    def handle(self, *args, **options):
        password = options["password"] or settings.DEMO_PASSWORD
        with transaction.atomic():
            owner, _ = user_get_or_create(email=DEMO_OWNER, password=password)
            staff, _ = user_get_or_create(email=DEMO_STAFF, password=password)
            get_user_model().objects.filter(pk=staff.pk).update(is_staff=True, is_superuser=True)
        organization = Organization.objects.filter(memberships__user=owner, name=DEMO_ORG).first()
        try:
            if not options["no_stripe"]:
                self._stripe(owner, organization)
                organization = Organization.objects.filter(memberships__user=owner, name=DEMO_ORG).first()
            elif organization is None:
                organization = organization_create(
                    name=DEMO_ORG,
                    billing_email="billing@demo.example",
                    owner=owner,
                    with_stripe_customer=False,
                )
        except ApplicationError as exc:
            raise CommandError(f"Demo set-up failed at Stripe: {exc.message}") from exc
        Membership.objects.get_or_create(user=owner, organization=organization, defaults={"role": Role.OWNER})
        organization.refresh_from_db()
        try:
            extras = demo_seeded.send(
                sender=self.__class__, organization=organization, stripe=not options["no_stripe"]
            )
        except ApplicationError as exc:
            raise CommandError(f"Demo set-up failed: {exc.message}") from exc
        platform_key = self._platform_key(staff)
        plan = organization.plan.name if organization.plan_id else "Free"
        self.stdout.write(
            self.style.SUCCESS("Demo ready.")
            + f"\n  organization: {organization.name} ({organization.id}), plan {plan}"
            + f" ({organization.subscription_status or 'active'})"
            + f"\n  owner login:  {DEMO_OWNER} / {password}   (sign in at /accounts/login/)"
            + f"\n  staff login:  {DEMO_STAFF} / {password}   (back office at /admin/)"
            + f"\n  platform key: {platform_key}   (the SaaS back end's key, all scopes; new at each start)"
            + "".join(f"\n  {line}" for _, line in extras if isinstance(line, str))
        )

    def _platform_key(self, staff) -> str:
        """A fresh demo platform key each start (the last one is revoked): a key is shown only once."""
        for old in PlatformKey.objects.filter(name=DEMO_PLATFORM_KEY, revoked_at__isnull=True):
            api_key_revoke(api_key=old)
        return platform_key_create(
            name=DEMO_PLATFORM_KEY, scopes=list(PlatformScope.values), created_by=staff
        ).raw_key

    def _stripe(self, owner, organization):
        stripe_catalog_sync()
        endpoint = webhook_endpoint_register(base_url=settings.SITE_URL)
        self.stdout.write(f"  webhooks: {endpoint.url}")
        stale = webhook_endpoints_stale_remove(base_url=settings.SITE_URL)
        if stale:
            self.stdout.write(
                f"  webhooks: removed {len(stale)} endpoint(s) of earlier local runs on other ports"
            )
        if organization is None:
            organization = organization_create(
                name=DEMO_ORG, billing_email="billing@demo.example", owner=owner
            )
        customer = organization_customer_get(organization=organization)
        if customer is not None and stripe_api.customer_exists(customer_id=customer.id) is False:
            # The emulator's state was reset while the database was kept: start the demo billing again.
            customer.subscriber = None
            customer.save(update_fields=["subscriber"])
            customer = None
        subscription = subscription_current_get(organization=organization)
        live = subscription is not None and subscription.stripe_data.get("status") in {
            "active",
            "trialing",
            "past_due",
        }
        if customer is None or not live:
            payment_method_attach(
                organization=organization, payment_method_id="pm_card_visa", set_default=True
            )
            subscription_create(
                organization=organization, plan=DEMO_PLAN[0], interval=DEMO_PLAN[1], trial_days=0
            )
        organization_billing_refresh(organization=organization)

"""Run inside `manage.py shell` against the `make run` stack: the soak's organizations, keys,
cards, auto-refill and subscriptions on Stripe test clocks. Prints one JSON line."""

import json
import os
import time

import stripe
from django.conf import settings
from djstripe.models import Customer

from billing import stripe_api
from billing.models import Membership, Organization, Role
from billing.services import (
    api_key_create,
    organization_create,
    payment_method_attach,
    platform_key_create,
    subscription_create,
    user_get_or_create,
)
from credits.models import CreditPack
from credits.services import auto_refill_set, credit_grant

run = os.environ["SOAK_RUN"]
owner, _ = user_get_or_create(email=f"soak-{run}@soak.test")
pack = CreditPack.objects.filter(active=True).order_by("amount").first()
out = {"orgs": [], "clocks": [], "pack": pack.code, "pack_credits": str(pack.credits)}
for i in range(3):
    org = organization_create(name=f"Soak {run} #{i}", billing_email=f"ap{i}-{run}@soak.test", owner=owner)
    card = payment_method_attach(organization=org, payment_method_id="pm_card_visa").id
    credit_grant(
        organization=org, amount=2000, source="promo", reason="soak start", idempotency_key=f"soak-start-{i}"
    )
    if i == 0:
        auto_refill_set(
            organization=org,
            enabled=True,
            threshold=4000,
            pack=pack,
            payment_method=card,
            max_refills_per_day=24,
        )
    out["orgs"].append(
        {
            "id": str(org.pk),
            "key": api_key_create(organization=org, name="soak").raw_key,
            "auto_refill": i == 0,
        }
    )
for i in range(2):
    options = stripe_api.request_options()
    clock = stripe.test_helpers.TestClock.create(
        frozen_time=int(time.time()), name=f"soak {run} {i}", **options
    )
    org = Organization.objects.create(
        name=f"Soak clock {run} #{i}", billing_email=f"clock{i}-{run}@soak.test"
    )
    Membership.objects.create(user=owner, organization=org, role=Role.OWNER)
    customer = stripe.Customer.create(
        email=org.billing_email,
        name=org.name,
        test_clock=clock.id,
        metadata={"djstripe_subscriber": str(org.pk), "organization_id": str(org.pk)},
        **options,
    )
    Customer.sync_from_stripe_data(customer, api_key=settings.STRIPE_SECRET_KEY)
    subscription_create(
        organization=org, plan="business", interval="month", payment_method="pm_card_visa", trial_days=0
    )
    out["clocks"].append(
        {"id": str(org.pk), "clock": clock.id, "key": api_key_create(organization=org, name="soak").raw_key}
    )
out["platform_key"] = platform_key_create(
    name=f"soak {run}", scopes=["credits:grant", "credits:consume", "usage:write"]
).raw_key
print("SOAK-SETUP " + json.dumps(out))

"""Organizations, their members and their Stripe customer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TypeVar

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import OperationalError, transaction
from djstripe.models import Customer

from config.exceptions import ValidationFailed

from .. import stripe_api
from ..models import Membership, Organization, Role
from ..selectors import organization_customer_get

logger = logging.getLogger(__name__)
T = TypeVar("T")
User = get_user_model()


def _validate_organization(name: str, billing_email: str) -> str:
    name = (name or "").strip()
    fields: dict[str, list[str]] = {}
    if not name:
        fields["name"] = ["This field may not be blank."]
    if not billing_email or "@" not in billing_email:
        fields["billing_email"] = ["Enter a valid email address."]
    if fields:
        raise ValidationFailed(fields=fields)
    return name


def organization_create(
    *,
    name: str,
    billing_email: str,
    owner: AbstractBaseUser | None = None,
    with_stripe_customer: bool = True,
    test_clock: str | None = None,
) -> Organization:
    """Create an organization, its owner membership and its Stripe customer.

    The Stripe customer is created first (its idempotency key comes from the new organization's
    id), then the organization and the dj-stripe mirror are saved in one transaction. If that
    fails, the Stripe customer is deleted again: a failed set-up leaves nothing half made."""
    name = _validate_organization(name, billing_email)
    organization_id = uuid.uuid4()
    customer = None
    if with_stripe_customer:
        customer = stripe_api.customer_create(
            organization_id=str(organization_id),
            email=billing_email,
            name=name,
            idempotency_key=f"organization:{organization_id}:customer",
            test_clock=test_clock,
        )
    try:
        with transaction.atomic():
            organization = Organization.objects.create(
                id=organization_id, name=name, billing_email=billing_email
            )
            if owner is not None:
                Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
            if customer is not None:
                customer_mirror_save(customer)
    except Exception:
        if customer is not None:
            _compensate_customer(customer["id"])
        raise
    return organization


def _compensate_customer(customer_id: str) -> None:
    try:
        stripe_api.customer_delete(customer_id=customer_id)
    except Exception:
        logger.exception(
            "compensation failed: Stripe customer %s is left without an organization", customer_id
        )


def mirror_write(write: Callable[[], T], *, attempts: int = 3) -> T:
    """Run `write` (saves into dj-stripe's mirror) in a transaction, again when PostgreSQL broke a
    deadlock by aborting it: a webhook for the same customer (dj-stripe syncing the customer and
    its cards in its own order) may be writing the same rows at that moment. What is written is
    Stripe's answer, so writing it again is safe. Inside an outer transaction it runs once."""
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                return write()
        except OperationalError as exc:
            deadlock = isinstance(exc.__cause__, psycopg.errors.DeadlockDetected)
            if not deadlock or attempt == attempts or transaction.get_connection().in_atomic_block:
                raise
            logger.info("mirror write deadlocked with a concurrent webhook; attempt %s", attempt + 1)
    raise AssertionError("unreachable")


def customer_mirror_save(customer: dict) -> Customer:
    """Save a Stripe customer as Stripe answered it into dj-stripe's mirror."""
    return Customer.sync_from_stripe_data(customer, api_key=settings.STRIPE_SECRET_KEY)


def organization_customer_ensure(*, organization: Organization):
    """The organization's dj-stripe Customer, created on Stripe if it has none yet (an
    organization made before billing was set up, or whose set-up was interrupted)."""
    customer = organization_customer_get(organization=organization)
    if customer is not None:
        return customer
    stripe_customer = stripe_api.customer_create(
        organization_id=str(organization.id),
        email=organization.billing_email,
        name=organization.name,
        idempotency_key=f"organization:{organization.id}:customer",
    )
    with transaction.atomic():
        return customer_mirror_save(stripe_customer)


def membership_set(*, organization: Organization, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(fields={"role": [f"Unknown role {role!r}."]})
    membership, _ = Membership.objects.update_or_create(
        organization=organization, user=user, defaults={"role": role}
    )
    return membership


def user_get_or_create(*, email: str, password: str | None = None) -> tuple[AbstractBaseUser, bool]:
    """Users log in with their e-mail as username."""
    email = email.strip().lower()
    user = User.objects.filter(username=email).first()
    if user is not None:
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user, False
    user = User(username=email, email=email)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user, True

"""Cards of an organization's Stripe customer."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from djstripe.models import Customer, PaymentMethod

from config.exceptions import NotFound, ValidationFailed

from .. import stripe_api, stripe_data
from ..models import Organization
from ..selectors import organization_customer_get, organization_default_payment_method_id
from .organizations import customer_mirror_save, organization_customer_ensure


def setup_intent_create(*, organization: Organization) -> str:
    customer = organization_customer_ensure(organization=organization)
    intent = stripe_api.setup_intent_create(customer_id=customer.id)
    return intent["client_secret"]


def _payment_method_of(organization: Organization, payment_method_id: str) -> tuple[Customer, PaymentMethod]:
    customer = organization_customer_get(organization=organization)
    pm = PaymentMethod.objects.filter(id=payment_method_id, customer=customer).first() if customer else None
    if pm is None:
        raise NotFound("Payment method not found.")
    return customer, pm


def payment_method_attach(*, organization: Organization, payment_method_id: str, set_default: bool = False):
    """Attach a card to the organization's customer; a declined card raises PaymentFailed (402)."""
    if not payment_method_id or not payment_method_id.startswith("pm_"):
        raise ValidationFailed(fields={"payment_method": ["Expected a Stripe PaymentMethod id (pm_...)."]})
    customer = organization_customer_ensure(organization=organization)
    mirrored = PaymentMethod.objects.filter(id=payment_method_id).first()
    if mirrored is not None and mirrored.customer_id not in (None, customer.id):
        raise NotFound("Payment method not found.")
    if mirrored is not None and mirrored.stripe_data.get("customer") == customer.id:
        data = mirrored.stripe_data
    else:
        # Attaching a card that belongs to another customer fails on Stripe's side; that is a 404 here.
        try:
            data = stripe_api.payment_method_attach(
                payment_method_id=payment_method_id, customer_id=customer.id
            )
        except stripe_api.StripeRequestError as exc:
            if exc.extra.get("stripe_code") == "resource_missing" or "already been attached" in exc.message:
                raise NotFound("Payment method not found.") from exc
            raise
    payment_method_id = data["id"]
    has_default = bool(stripe_data.default_payment_method_id(customer.stripe_data))
    stripe_customer = None
    if set_default or not has_default:
        stripe_customer = stripe_api.customer_update(
            customer_id=customer.id, invoice_settings={"default_payment_method": payment_method_id}
        )
    with transaction.atomic():
        pm = PaymentMethod.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        if stripe_customer is not None:
            customer_mirror_save(stripe_customer)
    return pm


def payment_method_set_default(*, organization: Organization, payment_method_id: str) -> None:
    customer, _ = _payment_method_of(organization, payment_method_id)
    stripe_customer = stripe_api.customer_update(
        customer_id=customer.id, invoice_settings={"default_payment_method": payment_method_id}
    )
    with transaction.atomic():
        customer_mirror_save(stripe_customer)


def payment_method_detach(*, organization: Organization, payment_method_id: str) -> None:
    customer, _ = _payment_method_of(organization, payment_method_id)
    data = stripe_api.payment_method_detach(payment_method_id=payment_method_id)
    stripe_customer = stripe_api.customer_retrieve(customer_id=customer.id)
    with transaction.atomic():
        PaymentMethod.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        PaymentMethod.objects.filter(id=payment_method_id).update(customer=None)
        customer_mirror_save(stripe_customer)


def payment_method_resolve(*, organization: Organization, payment_method: str | None) -> str | None:
    """A saved card of the organization: the one given (saved first when it is new, e.g. a card
    just collected with a SetupIntent) or, when none is given, the default card."""
    if payment_method:
        return payment_method_attach(organization=organization, payment_method_id=payment_method).id
    return organization_default_payment_method_id(organization=organization)

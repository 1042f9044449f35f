"""Cards of an organization's Stripe customer."""

from __future__ import annotations

from django.conf import settings
from djstripe.models import Customer, PaymentMethod

from config.exceptions import NotFound, ValidationFailed

from .. import stripe_api, stripe_data
from ..exceptions import PaymentMethodRequired
from ..models import Organization, PaymentMethodOwner
from ..selectors import (
    organization_customer_get,
    organization_default_payment_method_id,
    subscription_needs_card,
)
from .organizations import customer_mirror_save, mirror_write, organization_customer_ensure


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


def _claim(*, payment_method_id: str, organization: Organization, customer_id: str) -> None:
    """Record that the card is this organization's, or 404 when it ever was another's: a card
    belongs to one customer for life (Stripe refuses to re-attach a detached card; this holds
    even where it would not)."""
    owner, _ = PaymentMethodOwner.objects.get_or_create(
        payment_method_id=payment_method_id,
        defaults={"organization": organization, "customer_id": customer_id},
    )
    if owner.organization_id != organization.pk:
        raise NotFound("Payment method not found.")


def payment_method_attach(*, organization: Organization, payment_method_id: str, set_default: bool = False):
    """Attach a card to the organization's customer; a declined card raises PaymentFailed (402).

    A card that is, or ever was, another customer's answers 404, whatever the mirror says: the
    product checks its own record of owners and Stripe's current object before attaching."""
    if not payment_method_id or not payment_method_id.startswith("pm_") or len(payment_method_id) > 255:
        raise ValidationFailed(fields={"payment_method": ["Expected a Stripe PaymentMethod id (pm_...)."]})
    customer = organization_customer_ensure(organization=organization)
    if (
        PaymentMethodOwner.objects.filter(payment_method_id=payment_method_id)
        .exclude(organization=organization)
        .exists()
    ):
        raise NotFound("Payment method not found.")
    try:
        # Stripe's object, not the mirror. A test token such as `pm_card_visa` answers a new
        # PaymentMethod with its own id.
        data = stripe_api.payment_method_retrieve(payment_method_id=payment_method_id)
    except stripe_api.StripeRequestError as exc:
        raise NotFound("Payment method not found.") from exc
    owner = stripe_data.object_id(data.get("customer"))
    if owner not in (None, customer.id):
        raise NotFound("Payment method not found.")
    _claim(payment_method_id=data["id"], organization=organization, customer_id=customer.id)
    if owner is None:
        try:
            data = stripe_api.payment_method_attach(payment_method_id=data["id"], customer_id=customer.id)
        except stripe_api.StripeRequestError as exc:
            # Stripe refuses a card that was detached from a customer, or is another's.
            raise NotFound("Payment method not found.") from exc
    payment_method_id = data["id"]
    has_default = bool(stripe_data.default_payment_method_id(customer.stripe_data))
    stripe_customer = None
    if set_default or not has_default:
        stripe_customer = stripe_api.customer_update(
            customer_id=customer.id, invoice_settings={"default_payment_method": payment_method_id}
        )

    def write():
        pm = PaymentMethod.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        if stripe_customer is not None:
            customer_mirror_save(stripe_customer)
        return pm

    return mirror_write(write)


def payment_method_set_default(*, organization: Organization, payment_method_id: str) -> None:
    customer, _ = _payment_method_of(organization, payment_method_id)
    stripe_customer = stripe_api.customer_update(
        customer_id=customer.id, invoice_settings={"default_payment_method": payment_method_id}
    )
    mirror_write(lambda: customer_mirror_save(stripe_customer))


def payment_method_detach(*, organization: Organization, payment_method_id: str) -> None:
    """Remove a card. The last card of a subscription that still bills is refused (409
    `payment_method_required`); when the default card goes, the newest other card becomes the
    default, so the next renewal still has one."""
    customer, _ = _payment_method_of(organization, payment_method_id)
    others = [
        pm_id
        for pm_id in PaymentMethod.objects.filter(customer=customer)
        .exclude(id=payment_method_id)
        .order_by("-created")
        .values_list("id", flat=True)
    ]
    if not others and subscription_needs_card(organization=organization):
        raise PaymentMethodRequired()
    was_default = organization_default_payment_method_id(organization=organization) == payment_method_id
    data = stripe_api.payment_method_detach(payment_method_id=payment_method_id)
    if was_default and others:
        stripe_customer = stripe_api.customer_update(
            customer_id=customer.id, invoice_settings={"default_payment_method": others[0]}
        )
    else:
        stripe_customer = stripe_api.customer_retrieve(customer_id=customer.id)

    def write():
        PaymentMethod.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        PaymentMethod.objects.filter(id=payment_method_id).update(customer=None)
        customer_mirror_save(stripe_customer)

    mirror_write(write)


def payment_method_checkout_complete(*, organization: Organization, session_id: str):
    """Save the card collected by a Checkout session in setup mode (the page it returns to, and
    the `checkout.session.completed` webhook, both call this; the second changes nothing). The
    card becomes the default when the organization has none. None while the session is open."""
    session = stripe_api.checkout_session_retrieve(session_id=session_id, expand=["setup_intent"])
    customer = organization_customer_get(organization=organization)
    if (
        customer is None
        or session.get("mode") != "setup"
        or stripe_data.object_id(session.get("customer")) != customer.id
    ):
        raise NotFound("Checkout session not found.")
    if session.get("status") != "complete":
        return None
    intent = session.get("setup_intent") or {}
    payment_method_id = stripe_data.object_id(intent.get("payment_method"))
    if intent.get("status") != "succeeded" or not payment_method_id:
        return None
    return payment_method_attach(organization=organization, payment_method_id=payment_method_id)


def payment_method_resolve(*, organization: Organization, payment_method: str | None) -> str | None:
    """A saved card of the organization: the one given (saved first when it is new, e.g. a card
    just collected with a SetupIntent) or, when none is given, the default card."""
    if payment_method:
        return payment_method_attach(organization=organization, payment_method_id=payment_method).id
    return organization_default_payment_method_id(organization=organization)

"""One-off charges of a saved card (credit purchases and refills go through here)."""

from __future__ import annotations

from dataclasses import dataclass

from config.exceptions import ValidationFailed

from .. import stripe_api
from ..exceptions import PaymentFailed
from ..models import Organization
from .organizations import organization_customer_ensure
from .payment_methods import payment_method_resolve


@dataclass(frozen=True)
class ChargeResult:
    payment_intent_id: str
    status: str  # Stripe's PaymentIntent status: succeeded, requires_action, processing, ...
    client_secret: str | None = None


def payment_intent_off_session_create(
    *,
    organization: Organization,
    amount: int,
    currency: str,
    payment_method: str | None,
    idempotency_key: str,
    metadata: dict,
    description: str = "",
) -> ChargeResult:
    """Charge a saved card of the organization off-session (the card holder is not there).

    `payment_method` may be one of its saved cards or a new one (then saved first); none means
    the default card. A decline raises PaymentFailed (402, with the decline code and the
    PaymentIntent id); a card that needs the holder's authentication answers `requires_action`."""
    customer = organization_customer_ensure(organization=organization)
    payment_method = payment_method_resolve(organization=organization, payment_method=payment_method)
    if not payment_method:
        raise ValidationFailed(
            fields={"payment_method": ["The organization has no saved card; add one or give payment_method."]}
        )
    try:
        intent = stripe_api.payment_intent_create(
            customer_id=customer.id,
            amount=amount,
            currency=currency,
            payment_method_id=payment_method,
            idempotency_key=idempotency_key,
            metadata={"organization_id": str(organization.id), **metadata},
            description=description,
        )
    except PaymentFailed as exc:
        if "authentication_required" in (exc.extra.get("decline_code"), exc.extra.get("stripe_code")) and (
            exc.extra.get("payment_intent")
        ):
            return ChargeResult(
                payment_intent_id=exc.extra["payment_intent"],
                status="requires_action",
                client_secret=exc.extra.get("client_secret"),
            )
        raise
    return ChargeResult(
        payment_intent_id=intent["id"], status=intent["status"], client_secret=intent.get("client_secret")
    )


def payment_intent_find_by_metadata(*, key: str, value: str) -> ChargeResult | None:
    """An existing PaymentIntent carrying `metadata[key] == value` (Stripe's search: it lags by up
    to a minute, so it is for charges made long ago, not a second ago)."""
    found = stripe_api.payment_intents_search(query=f"metadata['{key}']:'{value}'")
    live = [pi for pi in found if pi["status"] != "canceled"]
    if not live:
        return None
    intent = live[0]
    return ChargeResult(
        payment_intent_id=intent["id"], status=intent["status"], client_secret=intent.get("client_secret")
    )


def payment_intent_status_get(*, payment_intent_id: str) -> str:
    return stripe_api.payment_intent_retrieve(payment_intent_id=payment_intent_id)["status"]

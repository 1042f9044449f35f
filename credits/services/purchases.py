"""Purchases of credits: a pending row saved before Stripe is called (its id keys the Stripe
call), charged off-session or through Checkout, granted exactly once when paid, and taken back
(the unspent part) when refunded or disputed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.exceptions import PaymentFailed
from billing.models import Organization
from billing.services import (
    checkout_session_create,
    payment_intent_find_by_metadata,
    payment_intent_off_session_create,
    payment_method_resolve,
    stripe_one_time_price_ensure,
)
from config.exceptions import ApplicationError, IdempotencyConflict, ValidationFailed

from ..exceptions import CreditPurchaseNotFound
from ..formatting import credits_str, quantize
from ..locks import account_lock
from ..models import (
    IN_FLIGHT_STATUSES,
    ZERO,
    AutoRefill,
    CreditGrant,
    CreditPack,
    CreditPurchase,
    CreditSource,
    CreditTransaction,
    PurchaseKind,
    PurchaseStatus,
    TransactionKind,
)
from ..selectors import credit_pack_get
from .ledger import Ledger, actor_label, live_grants, request_fingerprint

logger = logging.getLogger(__name__)


STRIPE_IDEMPOTENCY_WINDOW = timedelta(hours=23)
STRIPE_REFUSED = "stripe_error"  # billing.stripe_api.StripeRequestError: Stripe refused the request


def credit_purchase_create(
    *,
    organization: Organization,
    pack: CreditPack,
    kind: str = PurchaseKind.PACK,
    payment_method: str = "",
    resolved_payment_method: str = "",
    idempotency_key: str | None = None,
) -> tuple[CreditPurchase, bool]:
    """Save a pending purchase of a pack before Stripe is called (its id keys the Stripe call).
    The same idempotency key answers the same purchase (`created=False`); with another request, 409."""
    if not pack.active:
        raise ValidationFailed(fields={"pack": [f"The pack {pack.code!r} is not on sale."]})
    fingerprint = request_fingerprint("purchase", pack=pack.code, kind=kind, payment_method=payment_method)
    if idempotency_key:
        existing = CreditPurchase.objects.filter(
            organization=organization, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise IdempotencyConflict()
            return existing, False
    try:
        with transaction.atomic():
            account = account_lock(organization_id=organization.pk)
            purchase = CreditPurchase.objects.create(
                organization=organization,
                account=account,
                kind=kind,
                pack=pack,
                credits=pack.credits,
                amount=pack.amount,
                currency=pack.currency,
                payment_method=resolved_payment_method or payment_method,
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
                created_at=timezone.now(),
            )
    except IntegrityError:
        existing = CreditPurchase.objects.filter(
            organization=organization, idempotency_key=idempotency_key
        ).first()
        if existing is None:
            raise
        if existing.request_fingerprint != fingerprint:
            raise IdempotencyConflict() from None
        return existing, False
    return purchase, True


def purchase_find(*, purchase_id=None, payment_intent_id=None, checkout_session_id=None) -> CreditPurchase:
    qs = CreditPurchase.objects.all()
    purchase = None
    if purchase_id:
        purchase = qs.filter(pk=purchase_id).first()
    if purchase is None and payment_intent_id:
        purchase = qs.filter(payment_intent_id=payment_intent_id).first()
    if purchase is None and checkout_session_id:
        purchase = qs.filter(checkout_session_id=checkout_session_id).first()
    if purchase is None:
        raise CreditPurchaseNotFound()
    return purchase


@dataclass(frozen=True)
class FulfilResult:
    purchase: CreditPurchase
    transaction: CreditTransaction | None
    granted: bool


def _purchase_label(purchase: CreditPurchase) -> str:
    """The pack's name, or the credits when it is not one pack (a refill sized to a shortfall)."""
    if purchase.pack_id and purchase.credits == purchase.pack.credits:
        return purchase.pack.name
    return f"{credits_str(purchase.credits)} credits"


def credit_purchase_fulfil(
    *,
    payment_intent_id: str,
    purchase_id=None,
    checkout_session_id: str | None = None,
) -> FulfilResult:
    """Grant a paid purchase's credits exactly once, however often and in whichever order the
    API answer, `payment_intent.succeeded` and `checkout.session.completed` call this.

    Keyed on the PaymentIntent: the purchase row is locked after the account, and the grant's
    `reference` is the PaymentIntent id, unique per account in the database."""
    found = purchase_find(
        purchase_id=purchase_id, payment_intent_id=payment_intent_id, checkout_session_id=checkout_session_id
    )
    with transaction.atomic():
        account = account_lock(organization_id=found.organization_id)
        purchase = CreditPurchase.objects.select_for_update().get(pk=found.pk)
        if purchase.payment_intent_id and purchase.payment_intent_id != payment_intent_id:
            logger.error(
                "purchase %s is paid by %s, not %s",
                purchase.pk,
                purchase.payment_intent_id,
                payment_intent_id,
            )
            raise ValidationFailed(
                fields={"payment_intent": ["This purchase belongs to another PaymentIntent."]}
            )
        purchase.payment_intent_id = payment_intent_id
        if checkout_session_id and not purchase.checkout_session_id:
            purchase.checkout_session_id = checkout_session_id
        if purchase.grant_id is not None:
            purchase.save(update_fields=["payment_intent_id", "checkout_session_id", "updated_at"])
            row = purchase.grant.transactions.order_by("sequence").first()
            return FulfilResult(purchase=purchase, transaction=row, granted=False)
        ledger = Ledger(account, timezone.now())
        ledger.expire_due(live_grants(account))
        label = _purchase_label(purchase)
        grant = ledger.new_grant(
            source=CreditSource.PURCHASE,
            amount=purchase.credits,
            reference=payment_intent_id,
            reason=f"Purchase: {label}",
        )
        row = ledger.append(
            kind=TransactionKind.GRANT,
            amount=purchase.credits,
            grant=grant,
            reason=f"Purchase: {label}",
            metadata={"purchase_id": str(purchase.pk), "payment_intent": payment_intent_id},
            actor=actor_label(system=purchase.kind),
        )
        purchase.grant = grant
        if purchase.status != PurchaseStatus.REFUNDED:
            purchase.status = PurchaseStatus.SUCCEEDED
        purchase.failure_code = purchase.failure_message = ""
        if purchase.refunded_amount:  # the refund arrived first: take back the unspent part now
            _purchase_take_back(ledger, purchase, grant, reason="Refund of the purchase")
        ledger.flush()
        purchase.save()
        if purchase.kind == PurchaseKind.AUTO_REFILL:
            AutoRefill.objects.filter(account_id=account.pk).update(
                consecutive_failures=0, last_failure_code=""
            )
    return FulfilResult(purchase=purchase, transaction=row, granted=True)


def _purchase_take_back(ledger: Ledger, purchase: CreditPurchase, grant: CreditGrant, *, reason: str) -> None:
    target = (
        quantize(purchase.credits * purchase.refunded_amount / purchase.amount) if purchase.amount else ZERO
    )
    target = min(target, purchase.credits)
    wanted = target - purchase.credits_reversed
    take = min(wanted, grant.remaining)
    if take <= 0:
        return
    grant.remaining -= take
    ledger.changed_grants[grant.pk] = grant
    ledger.append(
        kind=TransactionKind.REFUND, amount=-take, grant=grant, reason=reason[:500], actor="system:stripe"
    )
    purchase.credits_reversed += take


def credit_purchase_reverse(
    *, payment_intent_id: str, refunded_amount: int | None = None, reason: str = "Refund of the purchase"
) -> CreditPurchase:
    """A refund or dispute of a purchase takes back the unspent part of its credits.

    `refunded_amount` is Stripe's cumulative figure in minor units (None: all of it), so the
    same event delivered again changes nothing, and a later, larger refund takes back more."""
    found = purchase_find(payment_intent_id=payment_intent_id)
    with transaction.atomic():
        account = account_lock(organization_id=found.organization_id)
        purchase = CreditPurchase.objects.select_for_update().get(pk=found.pk)
        refunded = purchase.amount if refunded_amount is None else min(int(refunded_amount), purchase.amount)
        if refunded <= purchase.refunded_amount:
            return purchase
        purchase.refunded_amount = refunded
        if refunded >= purchase.amount:
            purchase.status = PurchaseStatus.REFUNDED
        if purchase.grant_id is not None:
            ledger = Ledger(account, timezone.now())
            ledger.expire_due(live_grants(account))
            grant = ledger.changed_grants.get(purchase.grant_id) or CreditGrant.objects.get(
                pk=purchase.grant_id
            )
            _purchase_take_back(ledger, purchase, grant, reason=reason)
            ledger.flush()
        purchase.save()
    return purchase


def purchase_payment_intent_create(*, purchase: CreditPurchase) -> dict:
    """Charge the saved card off-session for a purchase: answers `{"id", "status", "client_secret"}`.
    The Stripe idempotency key is the purchase's own, so a rerun never charges twice."""
    if timezone.now() - purchase.created_at > STRIPE_IDEMPOTENCY_WINDOW:
        # Stripe forgets idempotency keys after 24 hours: a rerun that late looks the charge up
        # by our purchase id instead of trusting the key, so it still never charges twice.
        existing = payment_intent_find_by_metadata(key="purchase_id", value=str(purchase.pk))
        if existing is not None:
            return {
                "id": existing.payment_intent_id,
                "status": existing.status,
                "client_secret": existing.client_secret,
            }
    label = _purchase_label(purchase)
    result = payment_intent_off_session_create(
        organization=purchase.organization,
        amount=purchase.amount,
        currency=purchase.currency,
        payment_method=purchase.payment_method or None,
        idempotency_key=purchase.stripe_idempotency_key,
        metadata={"purchase_id": str(purchase.pk), "kind": "credits", "purchase_kind": purchase.kind},
        description=f"Credits: {label}",
    )
    return {"id": result.payment_intent_id, "status": result.status, "client_secret": result.client_secret}


def credit_purchase_failed(
    *,
    purchase_id,
    code: str,
    message: str = "",
    payment_intent_id=None,
    release_idempotency_key: bool = False,
) -> CreditPurchase:
    """A one-off purchase whose payment failed. Settled purchases are left as they are.
    `release_idempotency_key`: nothing reached the card, so the key may be used again."""
    with transaction.atomic():
        purchase = CreditPurchase.objects.select_for_update().get(pk=purchase_id)
        if purchase.status in (PurchaseStatus.SUCCEEDED, PurchaseStatus.REFUNDED):
            return purchase
        purchase.status = PurchaseStatus.FAILED
        purchase.failure_code = (code or "card_declined")[:64]
        purchase.failure_message = message[:500]
        if payment_intent_id and not purchase.payment_intent_id:
            purchase.payment_intent_id = payment_intent_id
        if release_idempotency_key and not purchase.payment_intent_id:
            purchase.idempotency_key = None
        purchase.save()
    return purchase


def _purchase_mark(purchase_id, *, status: str, payment_intent_id: str) -> CreditPurchase:
    with transaction.atomic():
        purchase = CreditPurchase.objects.select_for_update().get(pk=purchase_id)
        if purchase.status in IN_FLIGHT_STATUSES:
            purchase.status = status
            purchase.payment_intent_id = purchase.payment_intent_id or payment_intent_id
            purchase.save(update_fields=["status", "payment_intent_id", "updated_at"])
    return purchase


@dataclass(frozen=True)
class ChargeOutcome:
    purchase: CreditPurchase
    transaction: CreditTransaction | None
    payment_intent: str | None
    client_secret: str | None = None


def credit_purchase_charge(*, purchase: CreditPurchase) -> ChargeOutcome:
    """`POST /credits/purchase`: charge a pack purchase off-session and grant once paid.

    Safe to call again for the same purchase (the same idempotency key replays it): Stripe
    answers the first PaymentIntent and the grant is keyed on it. A settled purchase answers its
    result without calling Stripe; a declined one raises PaymentFailed again."""
    if purchase.status == PurchaseStatus.SUCCEEDED or purchase.grant_id:
        row = purchase.grant.transactions.order_by("sequence").first() if purchase.grant_id else None
        return ChargeOutcome(purchase, row, purchase.payment_intent_id)
    if purchase.status == PurchaseStatus.FAILED:
        raise PaymentFailed(
            purchase.failure_message or "The card was declined.",
            extra={"decline_code": purchase.failure_code, "payment_intent": purchase.payment_intent_id},
        )
    with transaction.atomic():
        locked = CreditPurchase.objects.select_for_update().get(pk=purchase.pk)
        if locked.status == PurchaseStatus.PENDING:
            locked.status = PurchaseStatus.PROCESSING
            locked.save(update_fields=["status", "updated_at"])
    try:
        intent = purchase_payment_intent_create(purchase=purchase)
    except PaymentFailed as exc:
        credit_purchase_failed(
            purchase_id=purchase.pk,
            code=str(exc.extra.get("decline_code") or "card_declined"),
            message=exc.message,
            payment_intent_id=exc.extra.get("payment_intent"),
        )
        raise
    except ApplicationError as exc:
        if exc.code != STRIPE_REFUSED:  # unavailable (503): the same-key retry stays safe
            raise
        # Stripe refused the request itself (nothing was charged): the purchase failed, and its
        # idempotency key is freed so a corrected retry with it works instead of answering 409.
        credit_purchase_failed(
            purchase_id=purchase.pk,
            code=str(exc.extra.get("stripe_code") or "stripe_refused"),
            message=exc.message,
            release_idempotency_key=True,
        )
        raise
    if intent["status"] == "succeeded":
        result = credit_purchase_fulfil(payment_intent_id=intent["id"], purchase_id=purchase.pk)
        return ChargeOutcome(result.purchase, result.transaction, intent["id"])
    status = (
        PurchaseStatus.REQUIRES_ACTION if intent["status"] == "requires_action" else PurchaseStatus.PROCESSING
    )
    marked = _purchase_mark(purchase.pk, status=status, payment_intent_id=intent["id"])
    return ChargeOutcome(marked, None, intent["id"], intent.get("client_secret"))


def stripe_credits_checkout_session_create(
    *, purchase: CreditPurchase, success_url: str, cancel_url: str
) -> dict:
    """A Checkout Session (mode=payment) for a pack purchase: answers `{"id", "url"}`. The pack is
    a one-time Stripe price (lookup key `credits_pack_<code>`), made on first use."""
    pack = purchase.pack
    price_id = stripe_one_time_price_ensure(
        lookup_key=f"credits_pack_{pack.code}",
        product_id=f"credits_pack_{pack.code}",
        product_name=pack.name,
        amount=purchase.amount,
        currency=purchase.currency,
        metadata={"credit_pack": pack.code},
    )
    metadata = {"kind": "credits", "purchase_id": str(purchase.pk), "credit_pack": pack.code}
    session = checkout_session_create(
        organization=purchase.organization,
        mode="payment",
        line_items=[{"price": price_id, "quantity": 1}],
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=metadata,
        payment_intent_data={"metadata": metadata},
        idempotency_key=purchase.stripe_idempotency_key,
    )
    CreditPurchase.objects.filter(pk=purchase.pk, checkout_session_id__isnull=True).update(
        checkout_session_id=session.id
    )
    return {"id": session.id, "url": session.url}


@dataclass(frozen=True)
class PackPurchase:
    outcome: ChargeOutcome
    created: bool  # False: the idempotency key answered an earlier purchase


def _pack_on_sale(code: str) -> CreditPack:
    pack = credit_pack_get(code=code)
    if pack is None:
        raise ValidationFailed(fields={"pack": [f"Unknown credit pack {code!r}."]})
    return pack


def credit_pack_purchase(
    *, organization: Organization, pack: str, payment_method: str = "", idempotency_key: str
) -> PackPurchase:
    """`POST /credits/purchase`: buy a pack with a saved card (or a new one), off-session.
    The same key answers the same purchase; another request with it is a 409.

    Everything that can be refused before Stripe charges (an unknown pack, a card that is not
    the organization's, no card at all) is refused before the purchase row exists, so a
    corrected retry with the same key works and nothing is left `processing`."""
    pack_row = _pack_on_sale(pack)
    resolved = ""
    if not CreditPurchase.objects.filter(organization=organization, idempotency_key=idempotency_key).exists():
        resolved = payment_method_resolve(organization=organization, payment_method=payment_method) or ""
        if not resolved:
            raise ValidationFailed(
                fields={
                    "payment_method": ["The organization has no saved card; add one or give payment_method."]
                }
            )
    purchase, created = credit_purchase_create(
        organization=organization,
        pack=pack_row,
        kind=PurchaseKind.PACK,
        payment_method=payment_method,
        resolved_payment_method=resolved,
        idempotency_key=idempotency_key,
    )
    return PackPurchase(outcome=credit_purchase_charge(purchase=purchase), created=created)


def credit_pack_checkout_session_create(
    *, organization: Organization, pack: str, success_url: str, cancel_url: str
) -> dict:
    """A Stripe Checkout page for a pack: answers `{"id", "url"}`; credits are granted by webhook."""
    purchase, _ = credit_purchase_create(
        organization=organization, pack=_pack_on_sale(pack), kind=PurchaseKind.CHECKOUT
    )
    return stripe_credits_checkout_session_create(
        purchase=purchase, success_url=success_url, cancel_url=cancel_url
    )

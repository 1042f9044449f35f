"""Writes of the billing app: tenancy, the Stripe customer, catalogue sync, payment methods,
subscriptions, checkout and portal sessions, and the billing state that webhooks keep in step.

Stripe is reached only through `stripe_api`; no database transaction is held open across a
Stripe call (call Stripe, then save in `transaction.atomic`)."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.exceptions import NotFound, ValidationFailed

from . import stripe_api
from .exceptions import PaymentFailed, SubscriptionExists, UnknownStripePrice
from .models import ApiKey, Membership, Organization, Plan, PlanPrice, Role
from .selectors import (
    ENTITLED_STATUSES,
    LIVE_STATUSES,
    organization_customer_get,
    plan_get_by_code,
    plan_price_for_stripe_price,
    plan_price_get,
    stripe_datetime,
    subscription_current_get,
)

logger = logging.getLogger(__name__)
User = get_user_model()


# --------------------------------------------------------------------------- organizations
def _validate_organization(name: str, billing_email: str) -> str:
    name = (name or "").strip()
    fields: dict[str, list[str]] = {}
    if not name:
        fields["name"] = ["This field may not be blank."]
    if not billing_email or "@" not in billing_email:
        fields["billing_email"] = ["Enter a valid email address."]
    if fields:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in fields.items()), fields=fields)
    return name


def organization_create(
    *, name: str, billing_email: str, owner: AbstractBaseUser | None = None, with_stripe_customer: bool = True
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
        )
    try:
        with transaction.atomic():
            organization = Organization.objects.create(
                id=organization_id, name=name, billing_email=billing_email
            )
            if owner is not None:
                Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
            if customer is not None:
                _customer_mirror(customer)
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


def _customer_mirror(customer):
    from djstripe.models import Customer

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
        return _customer_mirror(stripe_customer)


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


# --------------------------------------------------------------------------- API keys
def api_key_hash(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedApiKey:
    api_key: ApiKey
    raw_key: str  # shown once; never stored


def api_key_create(
    *,
    organization: Organization,
    name: str,
    role: str = Role.ADMIN,
    created_by: AbstractBaseUser | None = None,
) -> CreatedApiKey:
    if role == Role.OWNER or role not in Role.values:
        raise ValidationFailed(fields={"role": ["An API key's role is admin, billing or member."]})
    raw = ApiKey.PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name or "API key",
        role=role,
        prefix=raw[:10],
        hashed_key=api_key_hash(raw),
        created_by=created_by,
    )
    return CreatedApiKey(api_key=api_key, raw_key=raw)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Idempotent: revoking a revoked key keeps its first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def api_key_touch(*, api_key: ApiKey, min_interval_seconds: int = 60) -> None:
    """Record use without a write on every request: at most one update per interval."""
    now = timezone.now()
    last = api_key.last_used_at
    if last is None or (now - last).total_seconds() >= min_interval_seconds:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


# --------------------------------------------------------------------------- catalogue sync
@dataclass
class CatalogSyncResult:
    products_created: int = 0
    products_updated: int = 0
    prices_created: int = 0
    prices_updated: int = 0
    unchanged: int = 0
    lines: list[str] = field(default_factory=list)


def plan_product_id(plan: Plan) -> str:
    return f"plan_{plan.code}"


def stripe_catalog_sync() -> CatalogSyncResult:
    """Create or update the Stripe product and prices of every paid plan, keyed on our product
    ids and the prices' lookup keys, so a second run changes nothing. A changed amount makes a
    new price that takes the lookup key over; the old price is archived, and subscriptions on
    it keep mapping to the plan through its metadata."""
    from djstripe.models import Price, Product

    result = CatalogSyncResult()
    for plan in Plan.objects.prefetch_related("prices").order_by("sort_order"):
        if plan.is_free:
            continue
        product_id = plan_product_id(plan)
        wanted = {"name": plan.name, "description": plan.description or None, "active": plan.active}
        product = stripe_api.product_retrieve_or_none(product_id=product_id)
        if product is None:
            product = stripe_api.product_create(
                product_id=product_id,
                name=plan.name,
                description=plan.description,
                metadata={"plan_code": plan.code},
            )
            if not plan.active:
                product = stripe_api.product_update(product_id=product_id, active=False)
            result.products_created += 1
            result.lines.append(f"created product {product_id}")
        elif any(product.get(k) != v for k, v in wanted.items()):
            product = stripe_api.product_update(product_id=product_id, **wanted)
            result.products_updated += 1
            result.lines.append(f"updated product {product_id}")
        Product.sync_from_stripe_data(product, api_key=settings.STRIPE_SECRET_KEY)

        prices = list(plan.prices.all())
        existing = {
            p["lookup_key"]: p
            for p in stripe_api.prices_by_lookup_keys(lookup_keys=[p.lookup_key for p in prices])
        }
        for plan_price in prices:
            stripe_price = existing.get(plan_price.lookup_key)
            matches = stripe_price is not None and (
                stripe_price["unit_amount"] == plan_price.amount
                and stripe_price["currency"] == plan_price.currency
                and (stripe_price.get("recurring") or {}).get("interval") == plan_price.interval
                and stripe_price["product"] == product_id
            )
            if not matches:
                stripe_price = stripe_api.price_create(
                    product_id=product_id,
                    unit_amount=plan_price.amount,
                    currency=plan_price.currency,
                    lookup_key=plan_price.lookup_key,
                    interval=plan_price.interval,
                    metadata={"plan_code": plan.code, "interval": plan_price.interval},
                    replaces=stripe_price["id"] if stripe_price else None,
                )
                result.prices_created += 1
                result.lines.append(f"created price {stripe_price['id']} ({plan_price.lookup_key})")
            active = plan_price.active and plan.active
            if stripe_price["active"] != active:
                stripe_price = stripe_api.price_update(price_id=stripe_price["id"], active=active)
                result.prices_updated += 1
                result.lines.append(f"{'activated' if active else 'archived'} price {stripe_price['id']}")
            if matches and stripe_price["active"] == active:
                result.unchanged += 1
            Price.sync_from_stripe_data(stripe_price, api_key=settings.STRIPE_SECRET_KEY)
            if plan_price.stripe_price_id != stripe_price["id"]:
                PlanPrice.objects.filter(pk=plan_price.pk).update(stripe_price_id=stripe_price["id"])
        if plan.stripe_product_id != product_id:
            Plan.objects.filter(pk=plan.pk).update(stripe_product_id=product_id)
    return result


# --------------------------------------------------------------------------- billing state
@dataclass(frozen=True)
class BillingChange:
    organization: Organization
    old_status: str
    new_status: str
    old_plan_id: int | None
    new_plan_id: int | None

    @property
    def changed(self) -> bool:
        return (self.old_status, self.old_plan_id) != (self.new_status, self.new_plan_id)


def subscription_sync(*, subscription_id: str):
    """Re-read a subscription from Stripe into the dj-stripe mirror: handlers never trust the
    event's copy, so events may arrive in any order."""
    from djstripe.models import Subscription

    data = stripe_api.subscription_retrieve(subscription_id=subscription_id)
    return Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)


def organization_billing_refresh(*, organization: Organization) -> BillingChange:
    """Derive the organization's plan and status from its subscriptions in the dj-stripe mirror.
    Idempotent: running it again with the same mirror changes nothing. A cancellation queues
    one e-mail per subscription, whichever path (webhook, re-read task, API) notices it first."""
    fields = ("subscription_status", "plan_id", "plan_interval", "stripe_subscription_id")
    with transaction.atomic():
        locked = Organization.objects.select_for_update().get(pk=organization.pk)
        before = {f: getattr(locked, f) for f in fields}
        state = _billing_state_from_mirror(locked)
        for name, value in state.items():
            setattr(locked, name, value)
        if state != before:
            locked.save(
                update_fields=[
                    "subscription_status",
                    "plan",
                    "plan_interval",
                    "stripe_subscription_id",
                    "updated_at",
                ]
            )
        if state["subscription_status"] == "canceled" and state["stripe_subscription_id"]:
            billing_notice_queue(
                organization=locked,
                kind="subscription_canceled",
                key=f"subscription_canceled:{state['stripe_subscription_id']}",
                context={"subscription_id": state["stripe_subscription_id"]},
            )
    for name, value in state.items():
        setattr(organization, name, value)
    organization._state.fields_cache.pop("plan", None)
    return BillingChange(
        organization,
        before["subscription_status"],
        state["subscription_status"],
        before["plan_id"],
        state["plan_id"],
    )


def _billing_state_from_mirror(organization: Organization) -> dict:
    subscription = subscription_current_get(organization=organization)
    if subscription is None:
        return {"subscription_status": "", "plan_id": None, "plan_interval": "", "stripe_subscription_id": ""}
    data = subscription.stripe_data
    status = data.get("status", "")
    items = (data.get("items") or {}).get("data") or []
    price = (items[0].get("price") or {}) if items else {}
    price_id = price.get("id") if isinstance(price, dict) else price
    plan_price = plan_price_for_stripe_price(price_id=price_id) if price_id else None
    if plan_price is None and status in LIVE_STATUSES:
        # Raising makes the webhook fail, so Stripe redelivers it once staff have mapped the
        # price to a plan: an unknown price must not silently mean "free".
        raise UnknownStripePrice(
            f"Subscription {subscription.id} is on price {price_id}, which maps to no plan.",
            extra={"price": price_id, "subscription": subscription.id},
        )
    entitled = status in ENTITLED_STATUSES and plan_price is not None
    return {
        "subscription_status": status,
        "plan_id": plan_price.plan_id if entitled else None,
        "plan_interval": plan_price.interval if entitled else "",
        "stripe_subscription_id": subscription.id,
    }


# --------------------------------------------------------------------------- payment methods
def setup_intent_create(*, organization: Organization) -> str:
    customer = organization_customer_ensure(organization=organization)
    intent = stripe_api.setup_intent_create(customer_id=customer.id)
    return intent["client_secret"]


def _payment_method_of(organization: Organization, payment_method_id: str):
    from djstripe.models import PaymentMethod

    customer = organization_customer_get(organization=organization)
    pm = PaymentMethod.objects.filter(id=payment_method_id, customer=customer).first() if customer else None
    if pm is None:
        raise NotFound("Payment method not found.")
    return customer, pm


def payment_method_attach(*, organization: Organization, payment_method_id: str, set_default: bool = False):
    """Attach a card to the organization's customer; a declined card raises PaymentFailed (402)."""
    from djstripe.models import PaymentMethod

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
    has_default = bool((customer.stripe_data.get("invoice_settings") or {}).get("default_payment_method"))
    stripe_customer = None
    if set_default or not has_default:
        stripe_customer = stripe_api.customer_update(
            customer_id=customer.id, invoice_settings={"default_payment_method": payment_method_id}
        )
    with transaction.atomic():
        pm = PaymentMethod.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        if stripe_customer is not None:
            _customer_mirror(stripe_customer)
    return pm


def payment_method_set_default(*, organization: Organization, payment_method_id: str) -> None:
    customer, _ = _payment_method_of(organization, payment_method_id)
    stripe_customer = stripe_api.customer_update(
        customer_id=customer.id, invoice_settings={"default_payment_method": payment_method_id}
    )
    with transaction.atomic():
        _customer_mirror(stripe_customer)


def payment_method_detach(*, organization: Organization, payment_method_id: str) -> None:
    from djstripe.models import PaymentMethod

    customer, _ = _payment_method_of(organization, payment_method_id)
    data = stripe_api.payment_method_detach(payment_method_id=payment_method_id)
    stripe_customer = stripe_api.customer_retrieve(customer_id=customer.id)
    with transaction.atomic():
        PaymentMethod.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        PaymentMethod.objects.filter(id=payment_method_id).update(customer=None)
        _customer_mirror(stripe_customer)


# --------------------------------------------------------------------------- subscriptions
def _plan_price_or_400(plan_code: str, interval: str) -> PlanPrice:
    plan = plan_get_by_code(code=plan_code)
    if plan is None:
        raise ValidationFailed(
            f"plan: Unknown plan {plan_code!r}.", fields={"plan": [f"Unknown plan {plan_code!r}."]}
        )
    if plan.is_free:
        raise ValidationFailed(
            "plan: The free plan needs no subscription; cancel the current one to return to it.",
            fields={"plan": ["The free plan needs no subscription."]},
        )
    price = plan_price_get(plan=plan, interval=interval)
    if price is None or not price.stripe_price_id:
        raise ValidationFailed(
            f"interval: Plan {plan_code!r} has no {interval!r} price.",
            fields={"interval": [f"Plan {plan_code!r} has no {interval!r} price."]},
        )
    return price


def _live_subscription(organization: Organization):
    current = subscription_current_get(organization=organization)
    if current is not None and current.stripe_data.get("status") in LIVE_STATUSES:
        return current
    return None


def subscription_create(
    *,
    organization: Organization,
    plan: str,
    interval: str,
    payment_method: str | None = None,
    trial_days: int | None = None,
):
    """Subscribe the organization to a paid plan. 409 if it has a live subscription, 400 for an
    unknown plan, 402 when the first payment is declined (Stripe then makes no subscription;
    a card given here stays saved, as it does on Stripe's own pages)."""
    from djstripe.models import Subscription

    price = _plan_price_or_400(plan, interval)
    if _live_subscription(organization) is not None:
        raise SubscriptionExists()
    customer = organization_customer_ensure(organization=organization)
    if payment_method:
        # A test token such as `pm_card_visa` becomes a new PaymentMethod when attached: use its id.
        payment_method = payment_method_attach(
            organization=organization, payment_method_id=payment_method, set_default=True
        ).id
        customer = organization_customer_get(organization=organization)
    trial = price.plan.trial_days if trial_days is None else trial_days
    has_card = bool((customer.stripe_data.get("invoice_settings") or {}).get("default_payment_method"))
    if not has_card and not trial:
        raise ValidationFailed(
            "payment_method: A card is needed for a plan without a trial.",
            fields={"payment_method": ["A card is needed for a plan without a trial."]},
        )
    generation = organization_subscriptions_count(organization=organization)
    # Same organization, generation and parameters: the same key, so two concurrent requests
    # (or a retried one) make one subscription, never two.
    key = (
        f"subscription:{organization.id}:{generation}:{price.stripe_price_id}:{payment_method or '-'}:{trial}"
    )
    # The subscription pays with the customer's default card (set above when one is given), so
    # replacing the default card later is what the next renewal and Stripe's retries use.
    data = stripe_api.subscription_create(
        customer_id=customer.id,
        price_id=price.stripe_price_id,
        trial_days=trial or None,
        metadata={"organization_id": str(organization.id), "plan_code": price.plan.code},
        idempotency_key=key,
    )
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def organization_subscriptions_count(*, organization: Organization) -> int:
    from djstripe.models import Subscription

    return Subscription.objects.filter(customer__subscriber=organization).count()


def _require_live_subscription(organization: Organization):
    subscription = _live_subscription(organization)
    if subscription is None:
        raise NotFound("This organization has no subscription.")
    return subscription


def subscription_change(*, organization: Organization, plan: str | None = None, interval: str | None = None):
    """Move the subscription to another plan or interval, prorated."""
    from djstripe.models import Subscription

    current = _require_live_subscription(organization)
    data = current.stripe_data
    item = ((data.get("items") or {}).get("data") or [None])[0]
    price_now = plan_price_for_stripe_price(price_id=(item or {}).get("price", {}).get("id", ""))
    plan_code = plan or (price_now.plan.code if price_now else None)
    new_interval = interval or (price_now.interval if price_now else None)
    if not plan_code or not new_interval:
        raise ValidationFailed(
            "Give a plan or an interval.", fields={"plan": ["Give a plan or an interval."]}
        )
    price = _plan_price_or_400(plan_code, new_interval)
    if price_now is not None and price_now.pk == price.pk:
        return current
    updated = stripe_api.subscription_change_price(
        subscription_id=current.id,
        item_id=item["id"],
        price_id=price.stripe_price_id,
        idempotency_key=f"subscription:{current.id}:change:{item['id']}:{price.stripe_price_id}",
    )
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(updated, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def subscription_cancel(*, organization: Organization, immediately: bool):
    from djstripe.models import Subscription

    current = _require_live_subscription(organization)
    if immediately:
        data = stripe_api.subscription_cancel(subscription_id=current.id)
    else:
        data = stripe_api.subscription_set_cancel_at_period_end(subscription_id=current.id, cancel=True)
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def subscription_resume(*, organization: Organization):
    """Undo a cancellation at period end (before the period has ended)."""
    from djstripe.models import Subscription

    current = _require_live_subscription(organization)
    if not current.stripe_data.get("cancel_at_period_end"):
        return current
    data = stripe_api.subscription_set_cancel_at_period_end(subscription_id=current.id, cancel=False)
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


# --------------------------------------------------------------------------- checkout and portal
@dataclass(frozen=True)
class HostedSession:
    id: str
    url: str


def checkout_session_create(
    *,
    organization: Organization,
    mode: str,
    line_items: list[dict],
    success_url: str,
    cancel_url: str,
    metadata: dict,
    idempotency_key: str | None,
    subscription_data: dict | None = None,
    payment_intent_data: dict | None = None,
) -> HostedSession:
    """A Stripe Checkout session for the organization's customer (any mode)."""
    customer = organization_customer_ensure(organization=organization)
    params: dict = {
        "mode": mode,
        "customer": customer.id,
        "line_items": line_items,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": str(organization.id),
        "metadata": {"organization_id": str(organization.id), **metadata},
    }
    if subscription_data:
        params["subscription_data"] = subscription_data
    if payment_intent_data:
        params["payment_intent_data"] = payment_intent_data
    session = stripe_api.checkout_session_create(idempotency_key=idempotency_key, **params)
    return HostedSession(id=session["id"], url=session["url"])


def subscription_checkout_session_create(
    *, organization: Organization, plan: str, interval: str, success_url: str, cancel_url: str
) -> HostedSession:
    price = _plan_price_or_400(plan, interval)
    if _live_subscription(organization) is not None:
        raise SubscriptionExists()
    subscription_data: dict = {
        "metadata": {"organization_id": str(organization.id), "plan_code": price.plan.code}
    }
    if price.plan.trial_days:
        subscription_data["trial_period_days"] = price.plan.trial_days
    return checkout_session_create(
        organization=organization,
        mode="subscription",
        line_items=[{"price": price.stripe_price_id, "quantity": 1}],
        success_url=success_url,
        cancel_url=cancel_url,
        metadata={"kind": "subscription", "plan_code": price.plan.code},
        subscription_data=subscription_data,
        # Each click is a new session: there is no row of ours to derive a key from, and
        # stripe-python's own retries of this request reuse the key it generated.
        idempotency_key=None,
    )


def portal_session_create(*, organization: Organization, return_url: str) -> HostedSession:
    customer = organization_customer_ensure(organization=organization)
    session = stripe_api.portal_session_create(customer_id=customer.id, return_url=return_url)
    return HostedSession(id=session["id"], url=session["url"])


def entitled(status: str) -> bool:
    return status in ENTITLED_STATUSES


# --------------------------------------------------------------------------- e-mail notices
def billing_notice_queue(*, organization: Organization, kind: str, key: str, context: dict) -> bool:
    """Record a notice once per key and send it after commit. False when it was already queued."""
    from .models import BillingNotice
    from .tasks import billing_notice_send_task

    notice, created = BillingNotice.objects.get_or_create(
        key=key, defaults={"organization": organization, "kind": kind, "context": context}
    )
    if created:
        transaction.on_commit(lambda: billing_notice_send_task.delay(notice.pk))
    return created


def organization_notice_recipients(*, organization: Organization) -> list[str]:
    """The billing e-mail, plus owners and billing members."""
    emails = [organization.billing_email] if organization.billing_email else []
    emails += list(
        Membership.objects.filter(organization=organization, role__in=[Role.OWNER, Role.BILLING])
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    return sorted(set(emails), key=emails.index)


def billing_notice_send(*, notice_id: int) -> bool:
    """Send a queued notice (HTML and text). Safe to run twice: a sent notice is not resent."""
    from django.core.mail import EmailMultiAlternatives
    from django.template.loader import render_to_string

    from .models import BillingNotice

    with transaction.atomic():
        notice = BillingNotice.objects.select_for_update().select_related("organization").get(pk=notice_id)
        if notice.sent_at is not None:
            return False
        organization = notice.organization
        recipients = organization_notice_recipients(organization=organization)
        context = {
            "organization": organization,
            "site_url": settings.SITE_URL,
            "billing_url": f"{settings.SITE_URL}/billing/",
            **notice.context,
        }
        subject = render_to_string(f"emails/billing/{notice.kind}_subject.txt", context).strip()
        message = EmailMultiAlternatives(
            subject=subject,
            body=render_to_string(f"emails/billing/{notice.kind}.txt", context),
            to=recipients,
        )
        message.attach_alternative(
            render_to_string(f"emails/billing/{notice.kind}.html", context), "text/html"
        )
        message.send()
        notice.sent_at = timezone.now()
        notice.recipients = recipients
        notice.save(update_fields=["sent_at", "recipients"])
    return True


def organization_for_subscription_refresh(*, subscription_id: str) -> str:
    """Re-read the subscription from Stripe, then re-derive its organization's state.
    Returns the organization's new status (or "" when the customer belongs to no organization)."""
    subscription = subscription_sync(subscription_id=subscription_id)
    organization = subscription.customer.subscriber if subscription.customer_id else None
    if organization is None:
        return ""
    return organization_billing_refresh(organization=organization).new_status


# --------------------------------------------------------------------------- webhook endpoint
def webhook_endpoint_register(*, base_url: str):
    """Register `<base_url>/stripe/webhook/<uuid>/` with Stripe for every event, and mirror it in
    dj-stripe with its signing secret. Reuses an enabled endpoint already registered for this base."""
    from djstripe.models import WebhookEndpoint

    base_url = base_url.rstrip("/")
    existing = WebhookEndpoint.objects.filter(url__startswith=f"{base_url}/stripe/webhook/").exclude(
        secret=""
    )
    for endpoint in existing:
        # Also on Stripe's side: the emulator's state may have been reset while the database was kept.
        if endpoint.status == "enabled" and stripe_api.webhook_endpoint_exists(endpoint_id=endpoint.id):
            return endpoint
    endpoint_uuid = uuid.uuid4()
    data = stripe_api.webhook_endpoint_create(
        url=f"{base_url}/stripe/webhook/{endpoint_uuid}/",
        enabled_events=["*"],
        metadata={"djstripe_uuid": str(endpoint_uuid)},
    )
    with transaction.atomic():
        endpoint = WebhookEndpoint.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        if not endpoint.secret and data.get("secret"):
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=data["secret"])
            endpoint.secret = data["secret"]
    return endpoint


# --------------------------------------------------------------------------- one-off charges
@dataclass(frozen=True)
class ChargeResult:
    payment_intent_id: str
    status: str  # Stripe's PaymentIntent status: succeeded, requires_action, processing, ...
    client_secret: str | None = None


def _default_payment_method_id(organization: Organization) -> str | None:
    customer = organization_customer_get(organization=organization)
    if customer is None:
        return None
    default = (customer.stripe_data.get("invoice_settings") or {}).get("default_payment_method")
    return default.get("id") if isinstance(default, dict) else default


def payment_method_resolve(*, organization: Organization, payment_method: str | None) -> str | None:
    """A saved card of the organization: the one given (saved first when it is new, e.g. a card
    just collected with a SetupIntent) or, when none is given, the default card."""
    if payment_method:
        return payment_method_attach(organization=organization, payment_method_id=payment_method).id
    return _default_payment_method_id(organization)


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
            "payment_method: The organization has no saved card; add one or give payment_method.",
            fields={"payment_method": ["The organization has no saved card."]},
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


def stripe_one_time_price_ensure(
    *, lookup_key: str, product_id: str, product_name: str, amount: int, currency: str, metadata: dict
) -> str:
    """The id of an active one-time Stripe price for this amount, found by lookup key or made
    (with its product) when missing or when the amount changed."""
    existing = next(iter(stripe_api.prices_by_lookup_keys(lookup_keys=[lookup_key])), None)
    if (
        existing is not None
        and existing["unit_amount"] == amount
        and existing["currency"] == currency
        and (existing["active"])
    ):
        return existing["id"]
    if stripe_api.product_retrieve_or_none(product_id=product_id) is None:
        stripe_api.product_create(product_id=product_id, name=product_name, description="", metadata=metadata)
    price = stripe_api.price_create(
        product_id=product_id,
        unit_amount=amount,
        currency=currency,
        lookup_key=lookup_key,
        interval=None,
        metadata=metadata,
        replaces=existing["id"] if existing else None,
    )
    return price["id"]


# --------------------------------------------------------------------------- paid subscription periods
@dataclass(frozen=True)
class PaidSubscriptionPeriod:
    """A paid subscription invoice: which organization, which plan, which period it paid for."""

    organization: Organization
    invoice_id: str
    plan: Plan
    period_start: object
    period_end: object


def _subscription_period_of(invoice) -> PaidSubscriptionPeriod | None:
    from djstripe.models import Customer

    if invoice.get("status") != "paid":
        return None
    customer_id = invoice.get("customer")
    customer_id = customer_id.get("id") if isinstance(customer_id, dict) else customer_id
    customer = Customer.objects.filter(id=customer_id).select_related("subscriber").first()
    if customer is None or customer.subscriber is None:
        return None
    for line in (invoice.get("lines") or {}).get("data") or []:
        details = (line.get("parent") or {}).get("subscription_item_details") or {}
        if not details or details.get("proration"):
            continue
        price = ((line.get("pricing") or {}).get("price_details") or {}).get("price") or _id(
            line.get("price")
        )
        plan_price = plan_price_for_stripe_price(price_id=price) if price else None
        if plan_price is None:
            continue
        period = line.get("period") or {}
        return PaidSubscriptionPeriod(
            organization=customer.subscriber,
            invoice_id=invoice["id"],
            plan=plan_price.plan,
            period_start=stripe_datetime(period["start"]),
            period_end=stripe_datetime(period["end"]),
        )
    return None


def _id(value):
    return value.get("id") if isinstance(value, dict) else value


def subscription_invoice_period_get(*, invoice_id: str) -> PaidSubscriptionPeriod | None:
    """Re-read an invoice from Stripe; the period it paid for when it is a paid subscription
    invoice (not a proration-only one), else None."""
    return _subscription_period_of(stripe_api.invoice_retrieve(invoice_id=invoice_id))


def subscription_paid_periods_recent(
    *, organization: Organization, limit: int = 3
) -> list[PaidSubscriptionPeriod]:
    """The latest paid invoices of the organization's live subscription, from Stripe (for the
    beat task that catches periods the webhooks missed)."""
    subscription = _live_subscription(organization)
    if subscription is None:
        return []
    invoices = stripe_api.invoices_list(subscription_id=subscription.id, status="paid", limit=limit)
    return [p for p in map(_subscription_period_of, invoices) if p is not None]


# --------------------------------------------------------------------------- reconciliation with Stripe
def billing_stripe_drift_list(*, organization_ids: list | None = None) -> list[str]:
    """Organizations whose recorded subscription status differs from Stripe's (a lost webhook)."""
    drifts = []
    organizations = Organization.objects.exclude(stripe_subscription_id="")
    if organization_ids:
        organizations = organizations.filter(pk__in=organization_ids)
    for organization in organizations.order_by("pk"):
        try:
            data = stripe_api.subscription_retrieve(subscription_id=organization.stripe_subscription_id)
        except stripe_api.StripeRequestError as exc:
            drifts.append(
                f"organization {organization.pk}: subscription {organization.stripe_subscription_id} "
                f"not found on Stripe ({exc.message})"
            )
            continue
        if data["status"] != organization.subscription_status:
            drifts.append(
                f"organization {organization.pk}: subscription {data['id']} is {data['status']!r} on Stripe, "
                f"{organization.subscription_status!r} here"
            )
    return drifts


def payment_intent_status_get(*, payment_intent_id: str) -> str:
    return stripe_api.payment_intent_retrieve(payment_intent_id=payment_intent_id)["status"]

"""The plan catalogue on Stripe: products and prices kept in step with our plans."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from djstripe.models import Price, Product

from .. import stripe_api
from ..models import Plan, PlanMeteredPrice, PlanPrice


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
        _metered_prices_sync(plan, product_id, result)
        if plan.stripe_product_id != product_id:
            Plan.objects.filter(pk=plan.pk).update(stripe_product_id=product_id)
    return result


def stripe_meter_ensure(*, event_name: str, display_name: str, meters: dict | None = None) -> str:
    """The id of the active Stripe meter for `event_name`, created when missing."""
    if meters is None:
        meters = {m["event_name"]: m for m in stripe_api.meters_list() if m["status"] == "active"}
    meter = meters.get(event_name)
    if meter is None:
        meter = stripe_api.meter_create(event_name=event_name, display_name=display_name)
        meters[event_name] = meter
    return meter["id"]


def _metered_prices_sync(plan: Plan, product_id: str, result: CatalogSyncResult) -> None:
    """The plan's metered overage prices: their meters, then the prices (keyed by lookup key)."""
    metered = list(PlanMeteredPrice.objects.filter(plan=plan))
    if not metered:
        return
    meters = {m["event_name"]: m for m in stripe_api.meters_list() if m["status"] == "active"}
    existing = {
        p["lookup_key"]: p
        for p in stripe_api.prices_by_lookup_keys(lookup_keys=[m.lookup_key for m in metered])
    }
    for item in metered:
        meter_id = stripe_meter_ensure(
            event_name=item.meter_event_name, display_name=f"{item.metric} usage", meters=meters
        )
        price = existing.get(item.lookup_key)
        recurring = (price or {}).get("recurring") or {}
        matches = price is not None and (
            price["unit_amount"] == item.unit_amount
            and price["currency"] == item.currency
            and recurring.get("interval") == item.interval
            and recurring.get("meter") == meter_id
        )
        if not matches:
            price = stripe_api.metered_price_create(
                product_id=product_id,
                meter_id=meter_id,
                unit_amount=item.unit_amount,
                currency=item.currency,
                interval=item.interval,
                lookup_key=item.lookup_key,
                metadata={"plan_code": plan.code, "metric": item.metric, "overage": "true"},
                replaces=price["id"] if price else None,
            )
            result.prices_created += 1
            result.lines.append(f"created metered price {price['id']} ({item.lookup_key})")
        active = item.active and plan.active
        if price["active"] != active:
            price = stripe_api.price_update(price_id=price["id"], active=active)
            result.prices_updated += 1
        Price.sync_from_stripe_data(price, api_key=settings.STRIPE_SECRET_KEY)
        if (item.stripe_price_id, item.stripe_meter_id) != (price["id"], meter_id):
            PlanMeteredPrice.objects.filter(pk=item.pk).update(
                stripe_price_id=price["id"], stripe_meter_id=meter_id
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

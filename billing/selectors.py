"""Reads of the billing app: tenancy and access, the catalogue, the subscription and cards as the
dj-stripe mirror has them. A caller only ever reaches an organization through `organization_access`."""

from __future__ import annotations

import calendar
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import QuerySet
from django.utils.functional import SimpleLazyObject
from djstripe.models import Charge, Customer, Invoice, PaymentMethod, Price, Subscription

from config.postgres import prepared

from . import stripe_data
from .access import Access
from .models import (
    ApiKey,
    AuditEntry,
    BillingNotice,
    Membership,
    Organization,
    Plan,
    PlanMeteredPrice,
    PlanPrice,
    PlatformKey,
    Role,
)


class LazyOrganization(SimpleLazyObject):
    """An organization known by its id: `.pk` and `.id` answer without a query; anything else
    reads its row (once, fresh: never from a cache) when first needed. A key found in the key
    cache (`billing.key_cache`) reaches its organization this way, so a consumption, which needs
    only the id, costs no organization read."""

    def __init__(self, org_id: uuid.UUID):
        self.__dict__["_org_id"] = org_id
        super().__init__(lambda: _organization_or_404(org_id))

    @property
    def pk(self) -> uuid.UUID:
        return self.__dict__["_org_id"]

    id = pk


def _organization_or_404(org_id: uuid.UUID) -> Organization:
    from config.exceptions import NotFound

    organization = Organization.objects.filter(pk=org_id).first()
    if organization is None:  # deleted while a cached key of it still lived
        raise NotFound("Organization not found.")
    return organization


def organization_lazy(org_id: uuid.UUID) -> Organization:
    return LazyOrganization(org_id)  # type: ignore[return-value]


def organization_list_for_user(*, user) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).order_by("name", "id")


def organization_access(
    *, org_id, user=None, api_key: ApiKey | None = None, platform_key: PlatformKey | None = None
) -> Access | None:
    """The caller's access to the organization `org_id`, or None (the caller sees a 404): its
    members, its own API keys, platform keys and staff reach it; nobody else learns it exists."""
    try:
        org_uuid = org_id if isinstance(org_id, uuid.UUID) else uuid.UUID(str(org_id))
    except (TypeError, ValueError):
        return None
    if api_key is not None:
        if api_key.organization_id != org_uuid or api_key.revoked_at is not None:
            return None
        organization = (
            api_key.organization
            if ApiKey.organization.is_cached(api_key)
            else organization_lazy(api_key.organization_id)
        )
        return Access(organization=organization, role=api_key.role, api_key_id=api_key.pk)
    if platform_key is not None:
        organization = Organization.objects.filter(pk=org_uuid).first() if platform_key.is_active else None
        if organization is None:
            return None
        return Access(
            organization=organization,
            role=None,
            platform_key_id=platform_key.pk,
            scopes=frozenset(platform_key.scopes),
        )
    if user is None or not user.is_authenticated:
        return None
    membership = (
        Membership.objects.select_related("organization").filter(user=user, organization_id=org_uuid).first()
    )
    if membership is not None:
        return Access(
            organization=membership.organization,
            role=membership.role,
            user_id=user.pk,
            is_staff=user.is_staff,
        )
    if user.is_staff:
        organization = Organization.objects.filter(pk=org_uuid).first()
        if organization is not None:
            return Access(organization=organization, role=Role.ADMIN, user_id=user.pk, is_staff=True)
    return None


_API_KEY_FIELDS = ApiKey._meta.concrete_fields
_API_KEY_COLUMNS = [field.attname for field in _API_KEY_FIELDS]
# The active key with this hash (the column is unique), prepared once per connection: on every
# request whose key the process has not cached (`billing.key_cache`); the ORM's query building
# cost about 0.9 ms of CPU a lookup, this about a tenth of it.
_API_KEY_SQL = (
    f"SELECT {', '.join(f'k.{field.column}' for field in _API_KEY_FIELDS)} FROM {ApiKey._meta.db_table} k "  # noqa: S608
    "WHERE k.hashed_key = %s AND k.revoked_at IS NULL"
)


def api_key_get_active(*, hashed_key: str) -> ApiKey | None:
    row = prepared.fetchone(_API_KEY_SQL, [hashed_key])
    # Every column is a plain value (ids, text, timestamps): built as Django builds a row it read.
    return None if row is None else ApiKey.from_db("default", _API_KEY_COLUMNS, row)


def platform_key_get_active(*, hashed_key: str) -> PlatformKey | None:
    return PlatformKey.objects.filter(hashed_key=hashed_key, revoked_at__isnull=True).first()


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("created_at", "id")
    )


def api_key_list(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at", "id")


def api_key_get(*, organization: Organization, key_id) -> ApiKey | None:
    return ApiKey.objects.filter(organization=organization, pk=key_id).first()


def membership_role(*, organization: Organization, user) -> str | None:
    return (
        Membership.objects.filter(organization=organization, user=user).values_list("role", flat=True).first()
    )


# --------------------------------------------------------------------------- billing state and entitlements
# Statuses in which the subscription's plan applies. `past_due` keeps the plan while Stripe retries
# the payment (dunning); `incomplete` (first payment pending), `unpaid`, `canceled` and
# `incomplete_expired` fall back to the free plan.
ENTITLED_STATUSES = frozenset({"trialing", "active", "past_due"})
LIVE_STATUSES = frozenset({"trialing", "active", "past_due", "incomplete", "unpaid"})


@dataclass(frozen=True)
class BillingState:
    plan: str
    status: str | None


def organization_billing_state(*, organization: Organization) -> BillingState:
    """The plan code and subscription status shown for an organization. With no subscription
    ever, the free plan and `active`; after one ended, the free plan and its last status."""
    plan = organization_plan_get(organization=organization)
    return BillingState(plan=plan.code, status=organization.subscription_status or "active")


def plan_free_get() -> Plan:
    return Plan.objects.get(code=Plan.FREE)


def organization_plan_get(organization: Organization) -> Plan:
    """The plan whose limits and features apply to the organization now."""
    if organization.plan_id is not None and organization.subscription_status in ENTITLED_STATUSES:
        return organization.plan
    return plan_free_get()


def plan_limit(organization: Organization, metric: str) -> int | None:
    """The organization's limit for a usage metric per period; None means unlimited."""
    return organization_plan_get(organization).limits.get(metric)


def feature_enabled(organization: Organization, feature: str) -> bool:
    return feature in organization_plan_get(organization).features


def plan_list(*, active_only: bool = True) -> QuerySet[Plan]:
    queryset = Plan.objects.prefetch_related("prices").order_by("sort_order", "code")
    return queryset.filter(active=True) if active_only else queryset


def plan_get_by_code(*, code: str, active_only: bool = True) -> Plan | None:
    return plan_list(active_only=active_only).filter(code=code).first()


def plan_price_get(*, plan: Plan, interval: str, currency: str = "usd") -> PlanPrice | None:
    return PlanPrice.objects.filter(plan=plan, interval=interval, currency=currency, active=True).first()


def plan_price_for_stripe_price(*, price_id: str) -> PlanPrice | None:
    """Maps any Stripe price, current or archived, back to its plan and interval: by id first,
    then by the plan code and interval our sync writes into every price's metadata."""
    found = PlanPrice.objects.select_related("plan").filter(stripe_price_id=price_id).first()
    if found is not None:
        return found
    price = Price.objects.filter(id=price_id).first()
    if price is None:
        return None
    metadata = price.metadata or {}
    interval = metadata.get("interval") or ((price.recurring or {}).get("interval"))
    code = metadata.get("plan_code")
    if not code and (price.lookup_key or "").startswith("plan_"):
        code = price.lookup_key.split("_")[1]
    if not (code and interval):
        return None
    return (
        PlanPrice.objects.select_related("plan")
        .filter(plan__code=code, interval=interval, currency=price.currency)
        .first()
    )


def organization_customer_get(*, organization: Organization):
    """The organization's dj-stripe Customer, or None before billing set-up."""
    return (
        Customer.objects.filter(subscriber=organization, date_purged__isnull=True)
        .order_by("-created")
        .first()
    )


def organization_for_stripe_customer(*, customer_id: str | None) -> Organization | None:
    """The organization a Stripe customer belongs to (dj-stripe's subscriber), or None."""
    if not customer_id:
        return None
    customer = Customer.objects.filter(id=customer_id).select_related("subscriber").first()
    return customer.subscriber if customer is not None else None


def organization_charges(*, organization: Organization) -> QuerySet[Charge]:
    """The charges of the organization's Stripe customers, as dj-stripe mirrors them (charge.*
    webhooks keep them in step), newest first. Amounts are in `stripe_data` (minor units)."""
    return Charge.objects.filter(customer__subscriber=organization).order_by("-created", "-djstripe_id")


def organization_subscriptions(*, organization: Organization) -> QuerySet[Subscription]:
    return Subscription.objects.filter(customer__subscriber=organization).order_by("-created")


def subscription_current_get(*, organization: Organization) -> Subscription | None:
    """The organization's live subscription (newest first), else its newest ended one, else None."""
    subscriptions = list(organization_subscriptions(organization=organization))
    for subscription in subscriptions:
        if subscription.stripe_data.get("status") in LIVE_STATUSES:
            return subscription
    return subscriptions[0] if subscriptions else None


def subscription_live_get(*, organization: Organization) -> Subscription | None:
    """The organization's subscription that is not over yet (trialing to unpaid), else None."""
    current = subscription_current_get(organization=organization)
    if current is not None and current.stripe_data.get("status") in LIVE_STATUSES:
        return current
    return None


def organization_trial_days(*, organization: Organization, plan: Plan) -> int:
    """The trial a new subscription of `plan` gets: the plan's (or staff's override for this
    organization), and only if the organization never had a trial, here or through Stripe."""
    if organization.trial_used_at is not None:
        return 0
    if any(
        sub.stripe_data.get("trial_start") for sub in organization_subscriptions(organization=organization)
    ):
        return 0
    if organization.trial_days_override is not None:
        return organization.trial_days_override
    return plan.trial_days


def organization_subscriptions_count(*, organization: Organization) -> int:
    return Subscription.objects.filter(customer__subscriber=organization).count()


@dataclass(frozen=True)
class SubscriptionSummary:
    """What the API, the pages and the admin show of an organization's subscription."""

    plan: Plan
    interval: str | None
    status: str
    trial_end: datetime | None
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    stripe_id: str | None
    # Stripe's hosted page of the subscription's latest invoice while it is open (unpaid): where
    # a past-due subscription is paid.
    pay_url: str | None = None

    @property
    def is_free(self) -> bool:
        return self.stripe_id is None


def _sql_words(values) -> str:
    """A constant list of status words as an SQL array literal: written into the hot statements
    rather than bound on every call (psycopg's array dumping cost more than the rest of the
    parameters). Words only, checked."""
    words = sorted(values)
    assert all(re.fullmatch(r"[a-z_]+", w) for w in words), words
    return "ARRAY[" + ", ".join(f"'{w}'" for w in words) + "]::text[]"


_LIVE_SQL = _sql_words(LIVE_STATUSES)
_ENTITLED_SQL = _sql_words(ENTITLED_STATUSES)
assert re.fullmatch(r"[a-z_]+", Plan.FREE)

_CUSTOMER_KEY = Subscription._meta.get_field("customer").target_field.column  # dj-stripe: the Stripe id
_PLAN_FIELDS = Plan._meta.concrete_fields
_PLAN_ATTNAMES = [f.attname for f in _PLAN_FIELDS]
# JSON columns come back as text on Django's connection: each field's own conversion, as the ORM does.
_PLAN_CONVERTERS = [getattr(f, "from_db_value", None) for f in _PLAN_FIELDS]
# In one prepared statement: the organization, the plan that applies (`organization_plan_get`;
# the free plan without a live subscription), and its current subscription (live first, then
# newest: `subscription_current_get`) with the status and page of its latest invoice.
_SUMMARY_SQL = f"""
SELECT o.plan_interval, s.id, s.data, s.invoice_status, s.invoice_url,
       {", ".join(f"p.{f.column}" for f in _PLAN_FIELDS)}
FROM {Organization._meta.db_table} o
LEFT JOIN LATERAL (
    SELECT top.id, sd.d->>'status' AS status,
           -- the keys the summary reads (`stripe_data.subscription_period` included), not the whole object
           jsonb_build_object(
               'status', sd.d->'status',
               'trial_end', sd.d->'trial_end',
               'cancel_at_period_end', sd.d->'cancel_at_period_end',
               'latest_invoice', sd.d->'latest_invoice',
               'current_period_start', sd.d->'current_period_start',
               'current_period_end', sd.d->'current_period_end',
               'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
                   'current_period_start', sd.d->'items'->'data'->0->'current_period_start',
                   'current_period_end', sd.d->'items'->'data'->0->'current_period_end'
               )))
           ) AS data,
           i.status AS invoice_status, i.hosted_invoice_url AS invoice_url
    FROM (
        SELECT s.id, s.stripe_data AS raw
        FROM {Subscription._meta.db_table} s
        JOIN {Customer._meta.db_table} c ON c.{_CUSTOMER_KEY} = s.customer_id
        WHERE c.subscriber_id = o.id
        ORDER BY (s.stripe_data->>'status') = ANY({_LIVE_SQL}) DESC, s.created DESC
        LIMIT 1
    ) top
    -- The mirrored object is a compressed (TOASTed) column: each `->` on the column itself
    -- decompresses all of it again. Copied once into memory here (`|| '{{}}'` builds a plain
    -- value; OFFSET 0 keeps the planner from repeating the expression at each use).
    CROSS JOIN LATERAL (SELECT top.raw || '{{}}'::jsonb AS d OFFSET 0) sd
    LEFT JOIN LATERAL (
        SELECT x.status, x.hosted_invoice_url
        FROM {Invoice._meta.db_table}, jsonb_to_record(stripe_data) AS x(status text, hosted_invoice_url text)
        WHERE id = coalesce(sd.d->'latest_invoice'->>'id', sd.d->>'latest_invoice')
        LIMIT 1
    ) i ON true
) s ON true
LEFT JOIN {Plan._meta.db_table} p ON p.id = CASE
    WHEN s.status = ANY({_LIVE_SQL}) AND o.plan_id IS NOT NULL
         AND o.subscription_status = ANY({_ENTITLED_SQL})
    THEN o.plan_id
    ELSE (SELECT id FROM {Plan._meta.db_table} WHERE code = '{Plan.FREE}')
END
WHERE o.id = %(org)s
"""  # noqa: S608 - table names are the models' own


def _plan_from_row(values) -> Plan:
    """A Plan from its columns as the statement answered them, built as the ORM builds a row."""
    from django.db import connection

    if values[0] is None:  # no free plan in the catalogue: as `plan_free_get` fails
        raise Plan.DoesNotExist("Plan matching query does not exist.")
    converted = [
        v if convert is None or v is None else convert(v, None, connection)
        for v, convert in zip(values, _PLAN_CONVERTERS, strict=True)
    ]
    return Plan.from_db("default", _PLAN_ATTNAMES, converted)


def subscription_summary_get(*, organization: Organization) -> SubscriptionSummary:
    """The subscription as everyone shows it. With no live subscription: the free plan, `active`.
    One round trip by the organization's id (read fresh, with its plan, whatever the caller holds;
    the subscription and its latest invoice's status together)."""
    from config.exceptions import NotFound

    row = prepared.fetchone(_SUMMARY_SQL, {"org": organization.pk})
    if row is None:  # deleted while the caller held it
        raise NotFound("Organization not found.")
    plan_interval, stripe_id, data, invoice_status, invoice_url = row[:5]
    plan = _plan_from_row(row[5:])
    data = (json.loads(data) if isinstance(data, str) else data) if stripe_id is not None else {}
    if stripe_id is None or data.get("status") not in LIVE_STATUSES:
        return SubscriptionSummary(
            plan=plan,
            interval=None,
            status="active",
            trial_end=None,
            current_period_start=None,
            current_period_end=None,
            cancel_at_period_end=False,
            stripe_id=None,
        )
    period_start, period_end = stripe_data.subscription_period(data)
    invoice_id = stripe_data.object_id(data.get("latest_invoice"))
    return SubscriptionSummary(
        plan=plan,
        interval=plan_interval or None,
        status=data.get("status"),
        trial_end=stripe_data.timestamp(data.get("trial_end")),
        current_period_start=period_start,
        current_period_end=period_end,
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        stripe_id=stripe_id,
        # The hosted page of the latest invoice while it is open, from dj-stripe's mirror (kept
        # by the invoice.* webhooks).
        pay_url=invoice_url if invoice_id and invoice_status == "open" else None,
    )


def subscription_needs_card(*, organization: Organization) -> bool:
    """A subscription that will still charge a card: live (trialing to unpaid) and not ending at
    the period end. Its last card cannot be removed."""
    subscription = subscription_live_get(organization=organization)
    return subscription is not None and not subscription.stripe_data.get("cancel_at_period_end")


def organization_default_payment_method_id(*, organization: Organization) -> str | None:
    customer = organization_customer_get(organization=organization)
    return stripe_data.default_payment_method_id(customer.stripe_data) if customer is not None else None


def payment_method_list(*, organization: Organization) -> list[dict]:
    """Cards saved for the organization, from the dj-stripe mirror (kept in step by the
    services and by payment_method.* webhooks), the default first."""
    customer = organization_customer_get(organization=organization)
    if customer is None:
        return []
    default_id = stripe_data.default_payment_method_id(customer.stripe_data)
    out = [
        {"id": pm.id, **stripe_data.card_summary(pm.stripe_data), "is_default": pm.id == default_id}
        for pm in PaymentMethod.objects.filter(customer=customer).order_by("-created")
    ]
    out.sort(key=lambda row: not row["is_default"])
    return out


def organizations_with_live_subscription() -> QuerySet[Organization]:
    return Organization.objects.filter(subscription_status__in=ENTITLED_STATUSES).exclude(
        stripe_subscription_id=""
    )


# --------------------------------------------------------------------------- usage periods and metered prices
def calendar_month(moment: datetime) -> tuple[datetime, datetime]:
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def organization_billing_period(*, organization: Organization, now: datetime) -> tuple[datetime, datetime]:
    """The period usage limits count in: the live subscription's current period (from the
    dj-stripe mirror), or the calendar month (UTC) on the free plan or when the mirror has no
    period at all or one that starts after `now` (a test clock ahead of real time).

    A period the mirror shows as ended (a renewal whose webhook has not arrived yet) is rolled
    forward by the price's interval from the billing cycle anchor, as Stripe renews it: falling
    back to the calendar month there would count -- and bill through the meters -- usage of the
    ended period a second time in a window that overlaps it."""
    data = None
    if organization.stripe_subscription_id and organization.subscription_status in ENTITLED_STATUSES:
        row = (
            Subscription.objects.filter(id=organization.stripe_subscription_id)
            .values_list("stripe_data")
            .first()
        )
        if row is not None:
            data = row[0] or {}
    return subscription_billing_period(data, now=now)


def subscription_billing_period(subscription: dict | None, *, now: datetime) -> tuple[datetime, datetime]:
    """`organization_billing_period` from the mirrored subscription's data (None: no live
    subscription in the mirror)."""
    if subscription is not None:
        start, end = stripe_data.subscription_period(subscription)
        if start is not None and end is not None and start <= now:
            if now < end:
                return start, end
            rolled = _period_rolled_forward(subscription, start=start, end=end, now=now)
            if rolled is not None:
                return rolled
    return calendar_month(now)


# The organization's plan, status and the keys of its live subscription's mirror that
# `subscription_billing_period` reads, in one prepared statement by its id (the period itself is
# decided in Python). The subscription's data is NULL without a live one.
PERIOD_STATE_SQL = f"""
SELECT o.plan_id, o.subscription_status,
       CASE WHEN s.d IS NOT NULL THEN jsonb_build_object(
           'current_period_start', s.d->'current_period_start',
           'current_period_end', s.d->'current_period_end',
           'billing_cycle_anchor', s.d->'billing_cycle_anchor',
           'items', jsonb_build_object('data', jsonb_build_array(jsonb_build_object(
               'current_period_start', s.d->'items'->'data'->0->'current_period_start',
               'current_period_end', s.d->'items'->'data'->0->'current_period_end',
               'price', jsonb_build_object(
                   'recurring', s.d->'items'->'data'->0->'price'->'recurring'
               )
           )))
       ) END
FROM {Organization._meta.db_table} o
LEFT JOIN LATERAL (
    -- Decompressed once (`|| '{{}}'`, see _SUMMARY_SQL), not at each `->` above.
    SELECT stripe_data || '{{}}'::jsonb AS d FROM {Subscription._meta.db_table}
    WHERE o.stripe_subscription_id <> '' AND o.subscription_status = ANY({_ENTITLED_SQL})
      AND id = o.stripe_subscription_id
    LIMIT 1
) s ON true
WHERE o.id = %(org)s
"""  # noqa: S608 - table names are the models' own


@dataclass(frozen=True)
class PeriodState:
    """What usage limits depend on, read fresh: the organization's plan and subscription status,
    and the period usage counts in now (`organization_billing_period`)."""

    plan_id: int | None
    subscription_status: str
    period_start: datetime
    period_end: datetime


def organization_period_state_get(*, organization_id, now: datetime) -> PeriodState:
    """`organization_billing_period` with the organization's plan and status, by its id, in one
    round trip (the organization is not read otherwise)."""
    from config.exceptions import NotFound

    row = prepared.fetchone(PERIOD_STATE_SQL, {"org": organization_id})
    if row is None:  # deleted while the caller held it
        raise NotFound("Organization not found.")
    return period_state_from_row(row[0], row[1], row[2], now=now)


def period_state_from_row(plan_id, status: str, data, *, now: datetime) -> PeriodState:
    """The PeriodState of a PERIOD_STATE_SQL row (plan id, status, the subscription's keys)."""
    if isinstance(data, str):  # Django's connection leaves jsonb as text
        data = json.loads(data)
    start, end = subscription_billing_period(data, now=now)
    return PeriodState(plan_id=plan_id, subscription_status=status, period_start=start, period_end=end)


_INTERVALS = {"day": "day", "week": "week", "month": "month", "year": "year"}
_MAX_ROLLS = 400  # a daily price a year late; past that the calendar month is as good a guess


def _shifted(moment: datetime, unit: str, n: int) -> datetime:
    """`moment` moved n days, weeks, months or years; the day of the month clamped to the
    target month's last day (Jan 31 + 1 month = Feb 28, + 2 months = Mar 31)."""
    if unit == "day":
        return moment + timedelta(days=n)
    if unit == "week":
        return moment + timedelta(weeks=n)
    months = n * (12 if unit == "year" else 1)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def _period_rolled_forward(
    subscription: dict, *, start: datetime, end: datetime, now: datetime
) -> tuple[datetime, datetime] | None:
    """The renewal period covering `now` after the mirrored period [start, end) ended: periods of
    the item price's interval counted from the billing cycle anchor (day-of-month clamped as
    Stripe does: an anchor on the 31st renews on the 30th in a 30-day month)."""
    items = stripe_data.subscription_items(subscription)
    recurring = ((items[0].get("price") or {}).get("recurring") or {}) if items else {}
    unit = _INTERVALS.get(recurring.get("interval") or "")
    count = recurring.get("interval_count") or 1
    if unit is None or not isinstance(count, int) or count < 1:
        return None
    anchor = stripe_data.timestamp(subscription.get("billing_cycle_anchor")) or start
    if anchor > end:
        return None
    step = 0
    while step < _MAX_ROLLS:
        step += 1
        period_end = _shifted(anchor, unit, step * count)
        if period_end <= end:
            continue
        period_start = max(end, _shifted(anchor, unit, (step - 1) * count))
        if now < period_end:
            return (period_start, period_end) if period_start <= now else None
    return None


def plan_metered_prices(*, plan: Plan) -> list[PlanMeteredPrice]:
    return list(PlanMeteredPrice.objects.filter(plan=plan, active=True).exclude(stripe_price_id=""))


def plan_metered_prices_all_ids() -> set[str]:
    """Every Stripe metered price of the catalogue, active or not (items a plan change replaces)."""
    return set(PlanMeteredPrice.objects.exclude(stripe_price_id="").values_list("stripe_price_id", flat=True))


def plan_metered_price_ids(*, plan: Plan, interval: str) -> list[str]:
    """The Stripe metered prices a new subscription to the plan carries (those for the interval)."""
    return [p.stripe_price_id for p in plan_metered_prices(plan=plan) if p.interval == interval]


@dataclass(frozen=True)
class MeteredUsage:
    """A metric an organization's subscription bills in arrears above the plan's limit."""

    metric: str
    meter_event_name: str
    meter_id: str
    included: int  # the plan's limit for the metric: what the subscription already pays for
    customer_id: str


def organization_metered_usage(*, organization: Organization) -> list[MeteredUsage]:
    """The metered prices of the organization's live subscription (items on Stripe), with the
    customer the meter events go to. Empty on the free plan or without metered items."""
    if not organization.stripe_subscription_id or organization.subscription_status not in ENTITLED_STATUSES:
        return []
    row = (
        Subscription.objects.filter(id=organization.stripe_subscription_id)
        .values_list("stripe_data", "customer_id")
        .first()
    )
    if row is None:
        return []
    data, customer_id = row
    item_prices = {
        stripe_data.object_id(item.get("price")) for item in stripe_data.subscription_items(data or {})
    }
    plan = organization_plan_get(organization)
    out = []
    for metered in PlanMeteredPrice.objects.filter(plan=plan, stripe_price_id__in=item_prices):
        out.append(
            MeteredUsage(
                metric=metered.metric,
                meter_event_name=metered.meter_event_name,
                meter_id=metered.stripe_meter_id,
                included=int(plan.limits.get(metered.metric) or 0),
                customer_id=customer_id,
            )
        )
    return out


def plan_overage_metrics(*, plan: Plan) -> set[str]:
    """Metrics whose limit on this plan is billed past rather than refused."""
    return set(PlanMeteredPrice.objects.filter(plan=plan, active=True).values_list("metric", flat=True))


def billing_notice_list(*, organization: Organization, limit: int = 20) -> QuerySet[BillingNotice]:
    """The e-mails queued for the organization (its own and the staff alerts about it), newest first."""
    return BillingNotice.objects.filter(organization=organization).order_by("-created_at", "-id")[:limit]


def audit_entry_list(*, organization: Organization | None = None, limit: int = 20) -> QuerySet[AuditEntry]:
    entries = AuditEntry.objects.all()
    if organization is not None:
        entries = entries.filter(organization_id=organization.pk)
    return entries.order_by("-created_at", "-id")[:limit]

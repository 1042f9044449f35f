"""REST API of the credits app: one view per operation; the services do the work."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.access import Action
from billing.models import Interval
from billing.services import payment_method_checkout_session_create, subscription_checkout_session_create
from billing.tenancy import OrganizationApi
from config.formatting import moment_str
from config.inputs import InputInvalid, MetadataField, StrictIntegerField, parse_decimal, parse_metadata
from config.negotiation import JsonFirstNegotiation
from config.pagination import PageNumberPagination
from config.redirects import RedirectUrlField

from .formatting import CREDITS_INTEGER_DIGITS, CREDITS_PLACES, credits_str
from .models import CreditSource, TransactionKind
from .selectors import (
    auto_refill_get,
    credit_daily_totals,
    credit_pack_list,
    credit_price_list,
    credit_summary_get,
    credit_transaction_list,
)
from .services import (
    auto_refill_set,
    credit_account_settings_update,
    credit_consume,
    credit_consumption_reverse,
    credit_grant,
    credit_pack_checkout_session_create,
    credit_pack_purchase,
)


@extend_schema_field(OpenApiTypes.STR)
class CreditsAmountField(serializers.Field):
    """Credits in: a number or a decimal string, as `config.inputs.parse_decimal` allows (ASCII
    digits, sign, point; at most 16 digits before the point and 4 after, the ledger's columns).
    Out: `"1500"`, `"12.5"`."""

    def __init__(self, *, min_value: Decimal | None = None, positive: bool = False, **kwargs):
        self.min_value = min_value
        self.positive = positive
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Decimal:
        try:
            return parse_decimal(
                data,
                name=self.field_name or "amount",
                integer_digits=CREDITS_INTEGER_DIGITS,
                places=CREDITS_PLACES,
                min_value=self.min_value,
                positive=self.positive,
            )
        except InputInvalid as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value) -> str | None:
        return credits_str(value)


class AutoRefillOutputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    threshold = CreditsAmountField()
    pack = serializers.CharField(source="pack.code", allow_null=True, default=None)
    amount = CreditsAmountField(allow_null=True)
    payment_method = serializers.CharField(allow_blank=True)
    max_refills_per_day = serializers.IntegerField()
    consecutive_failures = serializers.IntegerField()
    disabled_reason = serializers.CharField(allow_blank=True)


AUTO_REFILL_OFF = {
    "enabled": False,
    "threshold": "0",
    "pack": None,
    "amount": None,
    "payment_method": "",
    "max_refills_per_day": 3,
    "consecutive_failures": 0,
    "disabled_reason": "",
}


def _auto_refill_data(refill) -> dict:
    return AutoRefillOutputSerializer(refill).data if refill is not None else dict(AUTO_REFILL_OFF)


class TransactionOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    amount = CreditsAmountField()
    balance_after = CreditsAmountField()
    source = serializers.CharField(source="grant.source", allow_null=True, default=None)
    grant_id = serializers.UUIDField(allow_null=True)
    reverses_id = serializers.UUIDField(allow_null=True)
    reason = serializers.CharField()
    event_name = serializers.CharField()
    quantity = CreditsAmountField(allow_null=True)
    metadata = serializers.JSONField()
    actor = serializers.CharField()
    idempotency_key = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class CreditSummaryApi(OrganizationApi):
    content_negotiation_class = JsonFirstNegotiation

    class OutputSerializer(serializers.Serializer):
        class ExpiringSerializer(serializers.Serializer):
            amount = CreditsAmountField()
            expires_at = serializers.DateTimeField()

        balance = CreditsAmountField()
        held = CreditsAmountField(help_text="Credits held by active reservations.")
        available = CreditsAmountField(help_text="balance - held: what can be spent now.")
        by_source = serializers.DictField(child=CreditsAmountField())
        expiring = ExpiringSerializer(many=True)
        auto_refill = AutoRefillOutputSerializer()
        low_balance = serializers.BooleanField()
        low_balance_threshold = CreditsAmountField(allow_null=True)
        overdraft_limit = CreditsAmountField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request, org):
        summary = credit_summary_get(organization=self.organization)
        # What OutputSerializer answers (it documents the shape), built directly: DRF's field
        # machinery cost more Python than the read.

        return Response(
            {
                "balance": credits_str(summary.balance),
                "held": credits_str(summary.held),
                "available": credits_str(summary.available),
                "by_source": {str(key): credits_str(value) for key, value in summary.by_source.items()},
                "expiring": [
                    {"amount": credits_str(e.amount), "expires_at": moment_str(e.expires_at)}
                    for e in summary.expiring
                ],
                "auto_refill": _auto_refill_data(summary.auto_refill),
                "low_balance": bool(summary.low_balance),
                "low_balance_threshold": credits_str(summary.low_balance_threshold),
                "overdraft_limit": credits_str(summary.overdraft_limit),
            }
        )


class CreditConsumeApi(OrganizationApi):
    """Consume credits. Answers 402 `insufficient_credits` (with `balance` and `required`) and
    consumes nothing when the balance does not cover it."""

    actions = {"POST": Action.CONSUME}
    content_negotiation_class = JsonFirstNegotiation

    class InputSerializer(serializers.Serializer):
        amount = CreditsAmountField(positive=True, required=False)
        event_name = serializers.CharField(max_length=64, required=False)
        quantity = CreditsAmountField(positive=True, required=False)
        reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
        idempotency_key = serializers.CharField(max_length=255)
        metadata = MetadataField()

        def validate(self, attrs):
            if ("amount" in attrs) == ("event_name" in attrs):
                raise serializers.ValidationError(
                    "Give either amount, or event_name (with an optional quantity)."
                )
            if "quantity" in attrs and "event_name" not in attrs:
                raise serializers.ValidationError({"quantity": ["quantity goes with event_name."]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        transaction_id = serializers.UUIDField()
        consumed = CreditsAmountField()
        balance = CreditsAmountField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request, org):
        data = request.data
        validated = _consume_input_plain(data)
        if validated is None:  # anything but the plain case: the serializer decides (and words errors)
            serializer = self.InputSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            validated = serializer.validated_data
        result = credit_consume(organization=self.organization, actor=self.access.actor, **validated)
        # What OutputSerializer gives (UUIDField: str, CreditsAmountField: credits_str), built directly.
        out = {
            "transaction_id": str(result.transaction.pk),
            "consumed": credits_str(result.consumed),
            "balance": credits_str(result.balance),
        }
        return Response(out, headers={"Idempotent-Replayed": "true"} if result.replayed else None)


_PLAIN_CONSUME_KEYS = frozenset({"amount", "reason", "idempotency_key", "metadata"})


def _plain_text(value, *, max_length: int, allow_blank: bool) -> bool:
    """A string DRF's CharField would keep as it is: printable ASCII, nothing to trim, within
    bounds (no NUL, no surrogate, no whitespace to strip)."""
    return (
        type(value) is str
        and len(value) <= max_length
        and (allow_blank or value != "")
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
    )


def _consume_input_plain(data) -> dict | None:
    """`CreditConsumeApi.InputSerializer`'s validated data for the common body (`amount` as a JSON
    integer or a string, printable ASCII `idempotency_key` and `reason`, flat `metadata`), or None
    for anything else, which the serializer then validates: the same checks (`parse_decimal`,
    `parse_metadata`, the lengths), without building a serializer on every call."""
    if type(data) is not dict or "amount" not in data or not data.keys() <= _PLAIN_CONSUME_KEYS:
        return None
    amount, key = data["amount"], data.get("idempotency_key")
    reason, metadata = data.get("reason", ""), data.get("metadata", {})
    if type(amount) not in (int, str) or type(metadata) is not dict:
        return None
    if not _plain_text(key, max_length=255, allow_blank=False):
        return None
    if not _plain_text(reason, max_length=500, allow_blank=True):
        return None
    try:
        required = parse_decimal(
            amount, name="amount", integer_digits=CREDITS_INTEGER_DIGITS, places=CREDITS_PLACES, positive=True
        )
        metadata = parse_metadata(metadata, name="metadata") if metadata else {}
    except InputInvalid:
        return None
    return {"amount": required, "reason": reason, "idempotency_key": key, "metadata": metadata}


class CreditGrantApi(OrganizationApi):
    """Staff and platform keys with `credits:grant` add credits (never a tenant): 201."""

    actions = {"POST": Action.GRANT}

    class InputSerializer(serializers.Serializer):
        amount = CreditsAmountField(positive=True)
        reason = serializers.CharField(max_length=500)
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        source = serializers.ChoiceField(
            choices=[CreditSource.MANUAL, CreditSource.PROMO], default=CreditSource.MANUAL, required=False
        )
        idempotency_key = serializers.CharField(max_length=255)
        metadata = MetadataField()

    class OutputSerializer(serializers.Serializer):
        transaction_id = serializers.UUIDField()
        grant_id = serializers.UUIDField()
        amount = CreditsAmountField()
        source = serializers.CharField()
        expires_at = serializers.DateTimeField(allow_null=True)
        balance = CreditsAmountField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = credit_grant(
            organization=self.organization, actor=self.access.actor, **serializer.validated_data
        )
        grant = result.grant
        data = self.OutputSerializer(
            {
                "transaction_id": result.transaction.pk,
                "grant_id": grant.pk,
                "amount": grant.amount,
                "source": grant.source,
                "expires_at": grant.expires_at,
                "balance": result.balance,
            }
        ).data
        if not result.created:  # the same idempotency key and body again: the first grant
            return Response(data, headers={"Idempotent-Replayed": "true"})
        return Response(data, status=status.HTTP_201_CREATED)


class CreditTransactionListApi(OrganizationApi):
    pagination_class = PageNumberPagination  # documents the paginated answer (config.schema)

    class FilterSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=TransactionKind.choices, required=False)
        start = serializers.DateTimeField(required=False)
        end = serializers.DateTimeField(required=False)

        def validate(self, attrs):
            if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
                raise serializers.ValidationError({"end": ["end must not be before start."]})
            return attrs

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", enum=TransactionKind.values),
            OpenApiParameter("start", OpenApiTypes.DATETIME, description="Inclusive."),
            OpenApiParameter("end", OpenApiTypes.DATETIME, description="Exclusive."),
        ],
        responses=TransactionOutputSerializer(many=True),
    )
    def get(self, request, org):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = credit_transaction_list(organization=self.organization, **filters.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset.select_related("grant"), request, view=self)
        return paginator.get_paginated_response(TransactionOutputSerializer(page, many=True).data)


class CreditDailyApi(OrganizationApi):
    """Credits consumed and granted per day over the last `days` days (default 30, today
    included, every day listed): the figures behind the credits page's chart."""

    class FilterSerializer(serializers.Serializer):
        days = StrictIntegerField(min_value=1, max_value=366, default=30)

    class OutputSerializer(serializers.Serializer):
        date = serializers.DateField(source="day")
        consumed = CreditsAmountField()
        granted = CreditsAmountField()

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="1 to 366, default 30.")],
        responses=OutputSerializer(many=True),
    )
    def get(self, request, org):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        rows = credit_daily_totals(organization=self.organization, **filters.validated_data)
        return Response(self.OutputSerializer(rows, many=True).data)


class CreditTransactionReverseApi(OrganizationApi):
    """Give back what a consumption took (a `refund` row), once per consumption."""

    actions = {"POST": Action.GRANT}

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=500)

    @extend_schema(request=InputSerializer, responses={201: TransactionOutputSerializer})
    def post(self, request, org, transaction_id):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = credit_consumption_reverse(
            organization=self.organization,
            transaction_id=transaction_id,
            actor=self.access.actor,
            **serializer.validated_data,
        )
        return Response(
            TransactionOutputSerializer(result.transaction).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


class CreditAutoRefillApi(OrganizationApi):
    actions = {"PUT": Action.PAY}

    class InputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        threshold = CreditsAmountField(min_value=Decimal(0))
        pack = serializers.CharField(required=False, allow_null=True, default=None)
        amount = CreditsAmountField(positive=True, required=False, allow_null=True, default=None)
        payment_method = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
        max_refills_per_day = StrictIntegerField(min_value=1, max_value=24, default=3)

    @extend_schema(responses=AutoRefillOutputSerializer)
    def get(self, request, org):
        return Response(_auto_refill_data(auto_refill_get(organization=self.organization)))

    @extend_schema(request=InputSerializer, responses=AutoRefillOutputSerializer)
    def put(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refill = auto_refill_set(organization=self.organization, **serializer.validated_data)
        return Response(AutoRefillOutputSerializer(refill).data)


class CreditLowBalanceApi(OrganizationApi):
    """The low-balance alert: one e-mail to the owners each time the balance falls below it."""

    actions = {"PUT": Action.PAY}

    class InputSerializer(serializers.Serializer):
        threshold = CreditsAmountField(min_value=Decimal(0), allow_null=True)

    class OutputSerializer(serializers.Serializer):
        threshold = CreditsAmountField(allow_null=True)
        low_balance = serializers.BooleanField()

    def _out(self, account_threshold, balance):
        low = account_threshold is not None and balance < account_threshold
        return self.OutputSerializer({"threshold": account_threshold, "low_balance": low}).data

    @extend_schema(responses=OutputSerializer)
    def get(self, request, org):
        summary = credit_summary_get(organization=self.organization)
        return Response(self._out(summary.low_balance_threshold, summary.balance))

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def put(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        account = credit_account_settings_update(
            organization=self.organization, low_balance_threshold=serializer.validated_data["threshold"]
        )
        return Response(self._out(account.low_balance_threshold, account.balance))


class CreditPackListApi(APIView):
    """Public catalogue: the credit packs on sale."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        code = serializers.CharField()
        name = serializers.CharField()
        credits = CreditsAmountField()
        amount = serializers.IntegerField()
        currency = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True), auth=[])
    def get(self, request):
        return Response(self.OutputSerializer(credit_pack_list(), many=True).data)


class CreditPriceListApi(APIView):
    """Public catalogue: what each event costs in credits."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class OutputSerializer(serializers.Serializer):
        event_name = serializers.CharField()
        credits_per_unit = CreditsAmountField()
        category = serializers.CharField()
        description = serializers.CharField()

    @extend_schema(responses=OutputSerializer(many=True), auth=[])
    def get(self, request):
        return Response(self.OutputSerializer(credit_price_list(), many=True).data)


class CreditPurchaseApi(OrganizationApi):
    """Buy a credit pack with a saved card, off-session. Credits are granted once the payment
    succeeds (here, or by the `payment_intent.succeeded` webhook when the bank asked for
    authentication). The same `idempotency_key` answers the same purchase; 402 `payment_failed`
    (with `decline_code`) when the card is declined."""

    actions = {"POST": Action.PAY}

    class InputSerializer(serializers.Serializer):
        pack = serializers.CharField(max_length=32)
        payment_method = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
        idempotency_key = serializers.CharField(max_length=255)

    class OutputSerializer(serializers.Serializer):
        purchase_id = serializers.UUIDField()
        status = serializers.CharField()
        transaction_id = serializers.UUIDField(allow_null=True)
        payment_intent = serializers.CharField(allow_null=True)
        client_secret = serializers.CharField(
            allow_null=True, help_text="When the card needs authentication."
        )
        credits = CreditsAmountField()
        balance = CreditsAmountField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer, 201: OutputSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = credit_pack_purchase(organization=self.organization, **serializer.validated_data)
        outcome = result.outcome
        body = self.OutputSerializer(
            {
                "purchase_id": outcome.purchase.pk,
                "status": outcome.purchase.status,
                "transaction_id": outcome.transaction.pk if outcome.transaction else None,
                "payment_intent": outcome.payment_intent,
                "client_secret": outcome.client_secret,
                "credits": outcome.purchase.credits,
                "balance": credit_summary_get(organization=self.organization).balance,
            }
        ).data
        return Response(
            body,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
            headers=None if result.created else {"Idempotent-Replayed": "true"},
        )


class CheckoutSessionApi(OrganizationApi):
    """A Stripe Checkout page: `kind: subscription` (a plan), `kind: credits` (a pack) or
    `kind: payment_method` (setup mode: save a card; it is recorded when the session completes).
    Here rather than in billing because the credits app, above billing, knows the packs."""

    actions = {"POST": Action.PAY}

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=["subscription", "credits", "payment_method"])
        plan = serializers.CharField(required=False)
        interval = serializers.ChoiceField(choices=Interval.choices, default=Interval.MONTH)
        pack = serializers.CharField(required=False)
        success_url = RedirectUrlField()
        cancel_url = RedirectUrlField()

        def validate(self, attrs):
            needed = {"subscription": "plan", "credits": "pack"}.get(attrs["kind"])
            if needed and not attrs.get(needed):
                raise serializers.ValidationError({needed: [f"Required for kind {attrs['kind']!r}."]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        id = serializers.CharField()
        url = serializers.URLField()

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        urls = {"success_url": data["success_url"], "cancel_url": data["cancel_url"]}
        if data["kind"] == "subscription":
            session = subscription_checkout_session_create(
                organization=self.organization, plan=data["plan"], interval=data["interval"], **urls
            )
            body = {"id": session.id, "url": session.url}
        elif data["kind"] == "payment_method":
            session = payment_method_checkout_session_create(organization=self.organization, **urls)
            body = {"id": session.id, "url": session.url}
        else:
            body = credit_pack_checkout_session_create(
                organization=self.organization, pack=data["pack"], **urls
            )
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)

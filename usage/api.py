"""REST API of the usage app: one view per operation; the services and selectors do the work.

Inputs are bounded (string lengths, quantities through `usage.validation.parse_quantity`, the
size and shape of `dimensions`, date ranges), so no request can answer a 500. Quantities are
answered as decimal strings, like credits (`"1500"`, `"12.5"`).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from billing.access import Action
from billing.tenancy import OrganizationApi
from config.exceptions import NotFound
from config.formatting import moment_str
from config.inputs import MetadataField, StrictIntegerField
from config.negotiation import JsonFirstNegotiation
from config.pagination import PageNumberPagination
from credits.formatting import credits_str
from credits.models import HoldStatus

from .selectors import (
    metric_get,
    usage_cost_estimate,
    usage_reservation_list,
    usage_series_get,
    usage_stats_get,
    usage_summary_get,
)
from .services import (
    usage_events_record,
    usage_meter_sync_queue,
    usage_reservation_create,
    usage_reservation_release,
    usage_reservation_settle,
    usage_track,
)
from .validation import MAX_BATCH, EventInvalid, parse_quantity

MAX_RANGE = timedelta(days=400)
MAX_HOURLY_RANGE = timedelta(days=31)


@extend_schema_field(OpenApiTypes.STR)
class QuantityField(serializers.Field):
    """A quantity: a number or a decimal string, up to 4 places, above zero, at most 10^12."""

    def __init__(self, *, allow_zero: bool = False, **kwargs):
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return parse_quantity(data, name=self.field_name or "quantity", allow_zero=self.allow_zero)
        except EventInvalid as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value):
        return credits_str(value)


@extend_schema_field(OpenApiTypes.STR)
class CreditsAmountField(serializers.Field):
    """Credits out, as decimal strings (`"1500"`, `"12.5"`); output only."""

    def to_representation(self, value):
        return credits_str(value)


@extend_schema_field({"type": "array", "minItems": 1, "maxItems": MAX_BATCH, "items": {"type": "object"}})
class EventListField(serializers.Field):
    """1 to 1,000 events, passed on as parsed JSON: each is checked by the service, which
    answers per index (a per-item DRF field would re-serialize every event to check it)."""

    def to_internal_value(self, data):
        if not isinstance(data, list):
            raise serializers.ValidationError("A list of events is required.")
        if not 1 <= len(data) <= MAX_BATCH:
            raise serializers.ValidationError(f"Give 1 to {MAX_BATCH} events.")
        return data

    def to_representation(self, value):
        return value


def _replayed(replayed: bool) -> dict | None:
    return {"Idempotent-Replayed": "true"} if replayed else None


class UsageEventsApi(OrganizationApi):
    """Record 1 to 1,000 events; each is accepted, a duplicate (same key, same event) or
    rejected with its reason. Never refused by a quota: usage that happened is recorded."""

    actions = {"POST": Action.USAGE_WRITE}
    # NUL characters and lone surrogates reject the one event (usage.validation), not the batch.
    checks_own_strings = True
    content_negotiation_class = JsonFirstNegotiation

    class InputSerializer(serializers.Serializer):
        events = EventListField()

    class OutputSerializer(serializers.Serializer):
        class RejectedSerializer(serializers.Serializer):
            index = serializers.IntegerField()
            error = serializers.CharField()
            message = serializers.CharField()

        accepted = serializers.IntegerField()
        duplicates = serializers.IntegerField()
        rejected = RejectedSerializer(many=True)

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    def post(self, request, org):
        data = request.data
        events = data.get("events") if type(data) is dict else None
        if type(events) is not list or not 1 <= len(events) <= MAX_BATCH:
            # Anything but the plain case: the serializer decides (and words the 400).
            serializer = self.InputSerializer(data=data)
            serializer.is_valid(raise_exception=True)
            events = serializer.validated_data["events"]
        result = usage_events_record(
            organization=self.organization,
            events=events,
            # The parser proved that no string of the body holds a NUL or a lone surrogate.
            strings_checked=getattr(request, "json_strings_clean", False),
        )
        # The OutputSerializer's shape (it documents it), built directly: a batch answers with
        # up to 1,000 rejections.
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": [
                    {"index": r.index, "error": r.error, "message": r.message} for r in result.rejected
                ],
            }
        )


class TrackOutputSerializer(serializers.Serializer):
    event_id = serializers.UUIDField()
    metric = serializers.CharField()
    quantity = QuantityField()
    occurred_at = serializers.DateTimeField()
    credits = CreditsAmountField()
    balance = CreditsAmountField(allow_null=True)
    current = QuantityField(allow_null=True, allow_zero=True)
    limit = QuantityField(allow_null=True, allow_zero=True)
    replayed = serializers.BooleanField()


class UsageTrackApi(OrganizationApi):
    """Check the quota and the credits, consume them and record the event in one step. 402
    `quota_exceeded` (with `quota` and `upgrade_url`) or `insufficient_credits`: nothing
    recorded or consumed."""

    actions = {"POST": Action.USAGE_WRITE}

    class InputSerializer(serializers.Serializer):
        metric = serializers.CharField(max_length=64)
        quantity = QuantityField(required=False, default=1)
        idempotency_key = serializers.CharField(max_length=255)
        occurred_at = serializers.CharField(max_length=64, required=False, allow_null=True, default=None)
        user_id = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
        resource_type = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
        resource_id = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
        dimensions = serializers.JSONField(required=False, default=dict)

    @extend_schema(
        request=InputSerializer, responses={201: TrackOutputSerializer, 200: TrackOutputSerializer}
    )
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = usage_track(
            organization=self.organization, actor=self.access.actor, **serializer.validated_data
        )
        return Response(
            TrackOutputSerializer(result).data,
            status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED,
            headers=_replayed(result.replayed),
        )


class UsageSummaryApi(OrganizationApi):
    """The current period's usage of every metric against the plan's limits."""

    content_negotiation_class = JsonFirstNegotiation

    class OutputSerializer(serializers.Serializer):
        class MetricSerializer(serializers.Serializer):
            metric = serializers.CharField()
            name = serializers.CharField()
            unit = serializers.CharField()
            current = QuantityField(allow_zero=True)
            limit = QuantityField(allow_null=True, allow_zero=True)
            percentage = serializers.FloatField(allow_null=True)
            unlimited = serializers.BooleanField()
            soft_limit_warning = serializers.BooleanField(help_text="At or past 80 % of the limit.")
            limit_reached = serializers.BooleanField(help_text="At or past 100 % of the limit.")
            overage_billed = serializers.BooleanField(help_text="Past the limit is billed, not refused.")

        period_start = serializers.DateTimeField()
        period_end = serializers.DateTimeField()
        usage = MetricSerializer(many=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request, org):
        summary = usage_summary_get(organization=self.organization, now=timezone.now())
        # What OutputSerializer answers (it documents the shape), built directly: DRF's field
        # machinery cost more than the query for the 17 metrics.

        return Response(
            {
                "period_start": moment_str(summary.period_start),
                "period_end": moment_str(summary.period_end),
                "usage": [
                    {
                        "metric": m.metric,
                        "name": m.name,
                        "unit": m.unit,
                        "current": credits_str(m.current),
                        "limit": credits_str(m.limit),
                        "percentage": None if m.percentage is None else float(m.percentage),
                        "unlimited": bool(m.unlimited),
                        "soft_limit_warning": bool(m.soft_limit_warning),
                        "limit_reached": bool(m.limit_reached),
                        "overage_billed": bool(m.overage_billed),
                    }
                    for m in summary.usage
                ],
            }
        )


class RangeSerializer(serializers.Serializer):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - timedelta(days=30)
        if start >= end:
            raise serializers.ValidationError({"end": ["end must be after start."]})
        if end - start > MAX_RANGE:
            raise serializers.ValidationError({"start": ["The range is at most 400 days."]})
        attrs["start"], attrs["end"] = start, end
        return attrs


class UsageMetricApi(OrganizationApi):
    """One metric over a range, per hour, day or month (UTC), with the credits it charged."""

    class FilterSerializer(RangeSerializer):
        group_by = serializers.ChoiceField(choices=["hour", "day", "month"], default="day")

        def validate(self, attrs):
            attrs = super().validate(attrs)
            if attrs["group_by"] == "hour" and attrs["end"] - attrs["start"] > MAX_HOURLY_RANGE:
                raise serializers.ValidationError({"group_by": ["Hourly series cover at most 31 days."]})
            return attrs

    class OutputSerializer(serializers.Serializer):
        class PointSerializer(serializers.Serializer):
            bucket = serializers.DateTimeField()
            quantity = QuantityField(allow_zero=True)
            events = serializers.IntegerField()
            credits = CreditsAmountField()

        metric = serializers.CharField()
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        group_by = serializers.CharField()
        total = QuantityField(allow_zero=True)
        credits = CreditsAmountField()
        series = PointSerializer(many=True)

    @extend_schema(
        operation_id="organizations_usage_metric_series",
        parameters=[
            OpenApiParameter(
                "start", OpenApiTypes.DATETIME, description="Inclusive; default 30 days before end."
            ),
            OpenApiParameter("end", OpenApiTypes.DATETIME, description="Exclusive; default now."),
            OpenApiParameter("group_by", enum=["hour", "day", "month"]),
        ],
        responses=OutputSerializer,
    )
    def get(self, request, org, metric):
        info = metric_get(code=metric)
        if info is None:
            raise NotFound(f"Unknown metric {metric[:64]!r}.")
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        series = usage_series_get(organization=self.organization, metric=info, **filters.validated_data)
        return Response(self.OutputSerializer(series).data)


class UsageStatsApi(OrganizationApi):
    """Totals per metric with credits and the average cost per unit, the top values of the
    rolled-up dimensions (platform, message type, ...) and the busiest hours of the day."""

    class FilterSerializer(RangeSerializer):
        dimension = serializers.CharField(max_length=64, required=False)

    class OutputSerializer(serializers.Serializer):
        class TotalSerializer(serializers.Serializer):
            metric = serializers.CharField()
            quantity = QuantityField(allow_zero=True)
            events = serializers.IntegerField()
            credits = CreditsAmountField()
            credits_per_unit = CreditsAmountField(allow_null=True, help_text="Average credits per unit.")

        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        events = serializers.IntegerField()
        credits = CreditsAmountField()
        totals = TotalSerializer(many=True, source="metrics")
        top_dimensions = serializers.SerializerMethodField()
        peak_hours = serializers.SerializerMethodField()

        def get_top_dimensions(self, stats) -> dict:
            return {
                key: [{"value": v, "quantity": credits_str(q), "events": e} for v, q, e in values]
                for key, values in stats.top_dimensions.items()
            }

        def get_peak_hours(self, stats) -> list:
            return [{"hour": h, "quantity": credits_str(q), "events": e} for h, q, e in stats.peak_hours]

    @extend_schema(
        parameters=[
            OpenApiParameter("start", OpenApiTypes.DATETIME),
            OpenApiParameter("end", OpenApiTypes.DATETIME),
            OpenApiParameter("dimension", OpenApiTypes.STR, description="Only this dimension key."),
        ],
        responses=OutputSerializer,
    )
    def get(self, request, org):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        stats = usage_stats_get(organization=self.organization, **filters.validated_data)
        return Response(self.OutputSerializer(stats).data)


class UsageCostEstimateApi(OrganizationApi):
    """What a quantity of a metric costs in credits, and those credits in money. A read."""

    actions = {"POST": Action.READ}

    class InputSerializer(serializers.Serializer):
        metric = serializers.CharField(max_length=64)
        quantity = QuantityField()

    class OutputSerializer(serializers.Serializer):
        metric = serializers.CharField()
        quantity = QuantityField()
        credits = CreditsAmountField()
        amount = serializers.IntegerField(help_text="Minor units.")
        currency = serializers.CharField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        info = metric_get(code=serializer.validated_data["metric"])
        if info is None:
            raise serializers.ValidationError({"metric": ["Unknown or inactive metric."]})
        estimate = usage_cost_estimate(metric=info, quantity=serializer.validated_data["quantity"])
        return Response(self.OutputSerializer(estimate).data)


class UsageSyncApi(OrganizationApi):
    """Send the organization's usage to its Stripe meters now (a task): 202."""

    actions = {"POST": Action.MANAGE}

    class OutputSerializer(serializers.Serializer):
        status = serializers.CharField()
        last_success_at = serializers.DateTimeField(allow_null=True)
        events_sent = serializers.IntegerField()

    @extend_schema(request=None, responses={202: OutputSerializer})
    def post(self, request, org):
        state = usage_meter_sync_queue(organization=self.organization)
        return Response(self.OutputSerializer(state).data, status=status.HTTP_202_ACCEPTED)


class ReservationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="hold.id")
    metric = serializers.CharField(source="hold.event_name")
    status = serializers.CharField(source="hold.status")
    estimated_quantity = QuantityField(source="hold.quantity", allow_zero=True)
    credits_held = CreditsAmountField(source="hold.amount")
    expires_at = serializers.DateTimeField(source="hold.expires_at")
    created_at = serializers.DateTimeField(source="hold.created_at")
    actual_quantity = QuantityField(source="hold.actual_quantity", allow_null=True, allow_zero=True)
    credits_consumed = CreditsAmountField(source="hold.consumed", allow_null=True)
    credits_released = CreditsAmountField(source="released", allow_null=True)
    event_id = serializers.UUIDField(allow_null=True)
    balance = CreditsAmountField(allow_null=True)
    available = CreditsAmountField(allow_null=True)


def _reservation(result=None, *, hold=None) -> dict:
    if result is None:
        released = hold.amount if hold.status in (HoldStatus.RELEASED, HoldStatus.EXPIRED) else None
        if hold.status == HoldStatus.SETTLED:
            released = hold.amount - (hold.consumed or 0) if hold.amount > (hold.consumed or 0) else 0
        payload = {"hold": hold, "released": released, "event_id": None, "balance": None, "available": None}
    else:
        payload = {
            "hold": result.hold,
            "released": result.released if result.hold.status != HoldStatus.HELD else None,
            "event_id": result.event_id,
            "balance": result.balance,
            "available": result.available,
        }
    return ReservationOutputSerializer(payload).data


class ReservationListApi(OrganizationApi):
    """`GET`: the organization's reservations (paginated, `?status=`). `POST`: hold the credits
    and quota an estimate needs: 201; 402 `insufficient_credits` or `quota_exceeded`."""

    pagination_class = PageNumberPagination  # documents the paginated answer (config.schema)

    actions = {"POST": Action.USAGE_WRITE}

    class InputSerializer(serializers.Serializer):
        metric = serializers.CharField(max_length=64)
        estimated_quantity = QuantityField()
        idempotency_key = serializers.CharField(max_length=255)
        expires_in = StrictIntegerField(
            required=False, min_value=60, max_value=7 * 86400, help_text="Seconds; default 3600."
        )
        metadata = MetadataField()

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=HoldStatus.choices, required=False)

    @extend_schema(
        parameters=[OpenApiParameter("status", enum=HoldStatus.values)],
        responses=ReservationOutputSerializer(many=True),
    )
    def get(self, request, org):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        holds = usage_reservation_list(organization=self.organization, **filters.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(holds, request, view=self)
        return paginator.get_paginated_response([_reservation(hold=h) for h in page])

    @extend_schema(request=InputSerializer, responses={201: ReservationOutputSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = usage_reservation_create(
            organization=self.organization,
            metric=data["metric"],
            estimated_quantity=data["estimated_quantity"],
            idempotency_key=data["idempotency_key"],
            expires_in=timedelta(seconds=data["expires_in"]) if "expires_in" in data else None,
            actor=self.access.actor,
            metadata=data["metadata"],
        )
        return Response(
            _reservation(result),
            status=status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED,
            headers=_replayed(result.replayed),
        )


class ReservationSettleApi(OrganizationApi):
    """Record the actual quantity: the event, its credits consumed, the rest released."""

    actions = {"POST": Action.USAGE_WRITE}

    class InputSerializer(serializers.Serializer):
        actual_quantity = QuantityField(allow_zero=True)

    @extend_schema(request=InputSerializer, responses=ReservationOutputSerializer)
    def post(self, request, org, reservation_id):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = usage_reservation_settle(
            organization=self.organization,
            reservation_id=reservation_id,
            actual_quantity=serializer.validated_data["actual_quantity"],
            actor=self.access.actor,
        )
        return Response(_reservation(result), headers=_replayed(result.replayed))


class ReservationReleaseApi(OrganizationApi):
    """Give a reservation back whole."""

    actions = {"POST": Action.USAGE_WRITE}

    @extend_schema(request=None, responses=ReservationOutputSerializer)
    def post(self, request, org, reservation_id):
        result = usage_reservation_release(organization=self.organization, reservation_id=reservation_id)
        return Response(_reservation(result), headers=_replayed(result.replayed))

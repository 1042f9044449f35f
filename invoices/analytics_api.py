"""Staff analytics API (`/api/v1/analytics/...`): figures across every organization, for staff
(a session) and platform keys holding `analytics:read`. Tenants, organization keys and platform
keys without the scope get 403 on every path, anonymous callers 401. The selectors in
`invoices/analytics.py` compute every figure when asked; these views validate the query, call
one selector and serialize it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.models import PlatformKey, PlatformScope
from config.pagination import PageNumberPagination
from credits.formatting import credits_str

from . import analytics

MAX_RANGE = timedelta(days=400)
EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)  # Stripe's first objects; nothing before it exists


class AnalyticsReader(permissions.BasePermission):
    """Staff users, or a platform key with `analytics:read`; nobody else."""

    message = "The analytics are for staff and platform keys with the analytics:read scope."

    def has_permission(self, request, view) -> bool:
        auth = request.auth
        if isinstance(auth, PlatformKey):
            return PlatformScope.ANALYTICS_READ in (auth.scopes or [])
        if auth is not None:
            return False  # an organization's API key
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class RangeSerializer(serializers.Serializer):
    """`start` and `end` (ISO 8601; default: the 30 days up to now), end after start, at most
    400 days apart, between 2010 and a year from now; `currency` a three-letter ISO code."""

    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, default="usd", max_length=3)

    def validate(self, attrs):
        now = timezone.now()
        end = attrs.get("end") or now
        start = attrs.get("start") or end - timedelta(days=30)
        errors = {}
        latest = now + timedelta(days=366)
        for name, value in (("start", start), ("end", end)):
            if not EARLIEST <= value <= latest:
                errors[name] = [f"{name} must be between 2010-01-01 and {latest.date().isoformat()}."]
        if not errors and start >= end:
            errors["end"] = ["end must be after start."]
        if not errors and end - start > MAX_RANGE:
            errors["start"] = ["The range is at most 400 days."]
        if errors:
            raise serializers.ValidationError(errors)
        attrs["start"], attrs["end"] = start, end
        attrs["currency"] = attrs.get("currency", "usd").lower()
        return attrs


RANGE_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="Default: 30 days before end."),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="Default: now. At most 400 days after start."),
    OpenApiParameter("currency", OpenApiTypes.STR, description="ISO code, default usd."),
]


class AnalyticsApi(APIView):
    permission_classes = [AnalyticsReader]

    def range(self, request, serializer=RangeSerializer) -> dict:
        params = serializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        return params.validated_data


def ratio_str(value) -> str | None:
    return None if value is None else format(value, "f")


class RevenueApi(AnalyticsApi):
    """Revenue of a range: MRR, ARR and ARPU at `end`, churn and trial conversion over the range,
    payments in it, and MRR with the metered revenue of the last closed period added."""

    class OutputSerializer(serializers.Serializer):
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()
        currency = serializers.CharField()
        mrr = serializers.IntegerField(help_text="Minor units, at end.")
        arr = serializers.IntegerField()
        arpu = serializers.IntegerField()
        paying_customers = serializers.IntegerField()
        customers_at_start = serializers.IntegerField()
        new_customers = serializers.IntegerField()
        churned_customers = serializers.IntegerField()
        mrr_at_start = serializers.IntegerField()
        new_mrr = serializers.IntegerField()
        expansion_mrr = serializers.IntegerField()
        contraction_mrr = serializers.IntegerField()
        churned_mrr = serializers.IntegerField()
        churn_rate = serializers.SerializerMethodField(help_text="Logo churn, a decimal string in [0, 1].")
        revenue_churn_rate = serializers.SerializerMethodField()
        trials_ended = serializers.IntegerField()
        trials_converted = serializers.IntegerField()
        trial_conversion_rate = serializers.SerializerMethodField()
        gross_volume = serializers.IntegerField()
        refunds = serializers.IntegerField()
        disputes = serializers.IntegerField()
        net_volume = serializers.IntegerField()
        payments_succeeded = serializers.IntegerField()
        payments_failed = serializers.IntegerField()
        payment_success_rate = serializers.SerializerMethodField()
        metered_revenue = serializers.IntegerField()
        usage_inclusive_mrr = serializers.IntegerField()

        def get_churn_rate(self, report) -> str | None:
            return ratio_str(report.churn_rate)

        def get_revenue_churn_rate(self, report) -> str | None:
            return ratio_str(report.revenue_churn_rate)

        def get_trial_conversion_rate(self, report) -> str | None:
            return ratio_str(report.trial_conversion_rate)

        def get_payment_success_rate(self, report) -> str | None:
            return ratio_str(report.payment_success_rate)

    @extend_schema(parameters=RANGE_PARAMETERS, responses=OutputSerializer)
    def get(self, request):
        report = analytics.revenue_report(**self.range(request))
        return Response(self.OutputSerializer(report).data)


class CreditsApi(AnalyticsApi):
    """Credit movements of a range from the ledger and the purchased-credit liability at `at`."""

    class FilterSerializer(RangeSerializer):
        at = serializers.DateTimeField(required=False, help_text="Liability at this instant; default end.")

        def validate(self, attrs):
            attrs = super().validate(attrs)
            at = attrs.get("at") or attrs["end"]
            if not EARLIEST <= at <= timezone.now() + timedelta(days=366):
                raise serializers.ValidationError(
                    {"at": ["at must be between 2010-01-01 and a year from now."]}
                )
            attrs["at"] = at
            return attrs

    @extend_schema(
        parameters=[*RANGE_PARAMETERS, OpenApiParameter("at", OpenApiTypes.DATETIME)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        report = analytics.credits_report(**self.range(request, self.FilterSerializer))
        return Response(
            {
                "start": report.start,
                "end": report.end,
                "at": report.at,
                "currency": report.currency,
                "purchased": credits_str(report.purchased),
                "granted": credits_str(report.granted),
                "consumed": credits_str(report.consumed),
                "expired": credits_str(report.expired),
                "taken_back": credits_str(report.taken_back),
                "granted_by_source": {k: credits_str(v) for k, v in report.by_source.items()},
                "liability": credits_str(report.liability),
                "liability_amount": report.liability_amount,
                "utilization": ratio_str(report.utilization),
            }
        )


class UsageApi(AnalyticsApi):
    """Usage of every organization in a range: by metric, by platform, by hour of the day (UTC)
    with the peak hour, and the organizations using most credits."""

    @extend_schema(parameters=RANGE_PARAMETERS[:2], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        params = self.range(request)
        report = analytics.usage_report(start=params["start"], end=params["end"])

        def quantities(rows):
            return [
                {
                    **row,
                    **{k: credits_str(row[k]) for k in ("quantity", "credits") if k in row},
                }
                for row in rows
            ]

        return Response(
            {
                "start": report.start,
                "end": report.end,
                "events": report.events,
                "credits": credits_str(report.credits),
                "by_metric": quantities(report.by_metric),
                "by_platform": quantities(report.by_platform),
                "by_hour": quantities(report.by_hour),
                "peak_hour": report.peak_hour,
                "leaders": quantities(report.leaders),
            }
        )


class PayoutsApi(AnalyticsApi):
    """Payouts of the Stripe account in a range (the mirror), with their total."""

    @extend_schema(parameters=RANGE_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        params = self.range(request)
        rows = analytics.payout_list(**params)
        return Response(
            {
                "start": params["start"],
                "end": params["end"],
                "currency": params["currency"],
                "count": len(rows),
                "total": sum(r["amount"] for r in rows),
                "results": rows,
            }
        )


class BalanceTransactionsApi(AnalyticsApi):
    """Balance transactions of the Stripe account in a range (the mirror), paginated, with totals
    by reporting category over the whole range."""

    class FilterSerializer(RangeSerializer):
        type = serializers.ChoiceField(
            choices=["charge", "payment", "refund", "payment_refund", "adjustment", "payout", "stripe_fee"],
            required=False,
        )

    @extend_schema(
        parameters=[*RANGE_PARAMETERS, OpenApiParameter("type", OpenApiTypes.STR)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        params = self.range(request, self.FilterSerializer)
        qs = analytics.balance_transaction_list(
            start=params["start"], end=params["end"], type=params.get("type"), currency=params["currency"]
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        response = paginator.get_paginated_response([analytics.balance_transaction_row(t) for t in page])
        response.data["totals"] = analytics.balance_totals(
            start=params["start"], end=params["end"], currency=params["currency"]
        )
        return response

"""REST API of the invoices app (under `/api/v1/organizations/{org}`): one view per operation;
the services and selectors do the work. Who may call what is `billing.access` (reads: any
member; generating a statement and sending an invoice: `pay`, the billing role and up; payment
links: `manage`, admin and up)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from billing.access import Action
from billing.tenancy import OrganizationApi
from config.inputs import StrictIntegerField
from config.pagination import PageNumberPagination
from credits.formatting import MAX_CHARGE_MINOR_UNITS

from .documents import invoice_document_filename, invoice_document_pdf
from .models import InvoiceKind, InvoiceStatus
from .selectors import HistoryKind, billing_history_page, billing_summary_get, invoice_get, invoice_list
from .services import invoice_send_queue, payment_link_create, statement_generate

# Bounds of the history's filters: dates a column holds, pages an offset holds.
HISTORY_FROM = datetime(1970, 1, 1, tzinfo=UTC)
HISTORY_TO = datetime(2100, 1, 1, tzinfo=UTC)
MAX_HISTORY_PAGE = 100_000


def pdf_path(invoice) -> str:
    return reverse("invoice-pdf", kwargs={"org": invoice.organization_id, "invoice_id": invoice.pk})


class InvoiceLineSerializer(serializers.Serializer):
    description = serializers.CharField()
    quantity = serializers.DecimalField(
        max_digits=24, decimal_places=4, allow_null=True, normalize_output=True
    )
    amount = serializers.IntegerField(help_text="Minor units.")
    currency = serializers.CharField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    metric = serializers.CharField(allow_blank=True, allow_null=True)
    kind = serializers.CharField()
    credits = serializers.DecimalField(
        max_digits=20, decimal_places=4, allow_null=True, normalize_output=True, coerce_to_string=True
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["metric"] = data["metric"] or None
        return data


class InvoiceSendSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    recipients = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    resend = serializers.BooleanField()
    requested_by = serializers.CharField()
    created_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class InvoiceSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField(allow_blank=True)
    kind = serializers.CharField()
    status = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    subtotal = serializers.IntegerField()
    tax = serializers.IntegerField()
    tax_lines = serializers.JSONField()
    total = serializers.IntegerField()
    amount_due = serializers.IntegerField()
    amount_paid = serializers.IntegerField()
    amount_remaining = serializers.IntegerField()
    currency = serializers.CharField()
    due_date = serializers.DateTimeField(allow_null=True)
    hosted_url = serializers.CharField(allow_null=True)
    pdf_url = serializers.SerializerMethodField()
    stripe_id = serializers.CharField(allow_null=True)
    stripe_pdf_url = serializers.CharField(allow_null=True)
    subscription = serializers.CharField(source="stripe_subscription_id", allow_null=True)
    opening_credits = serializers.DecimalField(
        max_digits=20, decimal_places=4, allow_null=True, normalize_output=True
    )
    closing_credits = serializers.DecimalField(
        max_digits=20, decimal_places=4, allow_null=True, normalize_output=True
    )
    created_at = serializers.DateTimeField()

    def get_pdf_url(self, invoice) -> str:
        request = self.context.get("request")
        path = pdf_path(invoice)
        return request.build_absolute_uri(path) if request is not None else path

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for name in ("hosted_url", "stripe_pdf_url", "subscription"):
            data[name] = data[name] or None
        return data


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, source="lines.all")
    sends = InvoiceSendSerializer(many=True, source="sends.all")


class InvoiceListApi(OrganizationApi):
    """`GET`: the organization's invoices and statements, newest first. `POST`: generate a
    statement for a period (the billing role and up): 201 with its lines."""

    pagination_class = PageNumberPagination  # documents the paginated answer (config.schema)

    actions = {"POST": Action.PAY}

    class InputSerializer(serializers.Serializer):
        period_start = serializers.DateTimeField()
        period_end = serializers.DateTimeField()
        include_usage = serializers.BooleanField(default=True)
        include_credits = serializers.BooleanField(default=True)

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=InvoiceStatus.choices, required=False)
        kind = serializers.ChoiceField(choices=InvoiceKind.choices, required=False)
        start = serializers.DateTimeField(required=False)
        end = serializers.DateTimeField(required=False)

        def validate(self, attrs):
            if attrs.get("start") and attrs.get("end") and attrs["end"] <= attrs["start"]:
                raise serializers.ValidationError({"end": ["Must be after start."]})
            return attrs

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=InvoiceStatus.values),
            OpenApiParameter("kind", enum=InvoiceKind.values),
            OpenApiParameter("start", OpenApiTypes.DATETIME, description="Made at or after."),
            OpenApiParameter("end", OpenApiTypes.DATETIME, description="Made before."),
        ],
        responses=InvoiceSerializer(many=True),
    )
    def get(self, request, org):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = invoice_list(organization=self.organization, **filters.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = InvoiceSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)

    @extend_schema(request=InputSerializer, responses={201: InvoiceDetailSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        statement = statement_generate(
            organization=self.organization, actor=self.access.actor, **serializer.validated_data
        )
        statement = invoice_get(organization=self.organization, invoice_id=statement.pk)
        return Response(InvoiceDetailSerializer(statement, context={"request": request}).data, status=201)


class InvoiceDetailApi(OrganizationApi):
    @extend_schema(responses=InvoiceDetailSerializer)
    def get(self, request, org, invoice_id):
        invoice = invoice_get(organization=self.organization, invoice_id=invoice_id)
        return Response(InvoiceDetailSerializer(invoice, context={"request": request}).data)


class JsonErrorsNegotiation(BaseContentNegotiation):
    """The PDF view answers a PDF itself; DRF renders only its errors, always as JSON (so an
    `Accept: application/pdf` client gets a JSON error body, not a 406)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class InvoicePdfApi(OrganizationApi):
    content_negotiation_class = JsonErrorsNegotiation

    @extend_schema(responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request, org, invoice_id):
        invoice = invoice_get(organization=self.organization, invoice_id=invoice_id)
        response = HttpResponse(invoice_document_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{invoice_document_filename(invoice)}"'
        response["Cache-Control"] = "private, no-store"
        return response


class InvoiceSendApi(OrganizationApi):
    """E-mail the invoice (HTML body, PDF attached) to `email` or the billing e-mail, through a
    task: 202 with the logged send. 409 `invoice_already_sent` when it already went to that
    address, unless `resend: true`."""

    actions = {"POST": Action.PAY}

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(required=False, allow_null=True, default=None)
        resend = serializers.BooleanField(required=False, default=False)

    @extend_schema(request=InputSerializer, responses={202: InvoiceSendSerializer})
    def post(self, request, org, invoice_id):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        send = invoice_send_queue(
            organization=self.organization,
            invoice_id=invoice_id,
            actor=self.access.actor,
            **serializer.validated_data,
        )
        return Response(InvoiceSendSerializer(send).data, status=202)


class PaymentLinkApi(OrganizationApi):
    """A one-off amount billed through a Stripe-hosted invoice, finalized at once: 201
    `{invoice_id, url}` (the hosted page takes a card; the paid status comes by webhook). The
    same `idempotency_key` with the same body answers the same link."""

    actions = {"POST": Action.MANAGE}

    class InputSerializer(serializers.Serializer):
        description = serializers.CharField(max_length=500)
        amount = StrictIntegerField(min_value=1, max_value=MAX_CHARGE_MINOR_UNITS, help_text="Minor units.")
        currency = serializers.RegexField(r"^[A-Za-z]{3}$", max_length=3)
        days_until_due = StrictIntegerField(min_value=0, max_value=365)
        idempotency_key = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)

    class OutputSerializer(serializers.Serializer):
        invoice_id = serializers.UUIDField()
        url = serializers.URLField()
        number = serializers.CharField()
        status = serializers.CharField()
        amount = serializers.IntegerField()
        currency = serializers.CharField()
        due_date = serializers.DateTimeField(allow_null=True)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer, 200: OutputSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = payment_link_create(
            organization=self.organization, actor=self.access.actor, **serializer.validated_data
        )
        invoice = result.invoice
        body = self.OutputSerializer(
            {
                "invoice_id": invoice.pk,
                "url": invoice.hosted_url,
                "number": invoice.number,
                "status": invoice.status,
                "amount": invoice.amount_due,
                "currency": invoice.currency,
                "due_date": invoice.due_date,
            }
        ).data
        return Response(
            body,
            status=201 if result.created else 200,
            headers=None if result.created else {"Idempotent-Replayed": "true"},
        )


class CreditsField(serializers.DecimalField):
    def __init__(self, **kwargs):
        super().__init__(max_digits=20, decimal_places=4, normalize_output=True, **kwargs)


class BillingSummaryApi(OrganizationApi):
    """Plan and status, the next invoice (date and amount from Stripe's preview; null with
    `next_invoice_unavailable` when Stripe cannot be asked just now), credits (balance, held,
    available), open invoices, and usage highlights against the plan's limits."""

    class OutputSerializer(serializers.Serializer):
        class PlanSerializer(serializers.Serializer):
            code = serializers.CharField()
            name = serializers.CharField()

        class NextInvoiceSerializer(serializers.Serializer):
            date = serializers.DateTimeField(allow_null=True)
            amount = serializers.IntegerField()
            currency = serializers.CharField()

        class CreditsSerializer(serializers.Serializer):
            balance = CreditsField()
            held = CreditsField()
            available = CreditsField()
            low_balance = serializers.BooleanField()

        class UsageSerializer(serializers.Serializer):
            metric = serializers.CharField()
            current = serializers.DecimalField(max_digits=24, decimal_places=4, normalize_output=True)
            limit = serializers.DecimalField(
                max_digits=24, decimal_places=4, allow_null=True, normalize_output=True
            )
            percentage = serializers.FloatField(allow_null=True)

        plan = PlanSerializer()
        interval = serializers.CharField(allow_null=True)
        status = serializers.CharField()
        trial_end = serializers.DateTimeField(allow_null=True)
        current_period_end = serializers.DateTimeField(allow_null=True)
        cancel_at_period_end = serializers.BooleanField()
        next_invoice = NextInvoiceSerializer(allow_null=True)
        next_invoice_unavailable = serializers.BooleanField()
        credits = CreditsSerializer()
        open_invoices = serializers.IntegerField()
        amount_due = serializers.IntegerField()
        currency = serializers.CharField()
        usage = UsageSerializer(many=True)

    @extend_schema(responses=OutputSerializer)
    def get(self, request, org):
        summary = billing_summary_get(organization=self.organization)
        subscription = summary.subscription
        data = {
            "plan": subscription.plan,
            "interval": subscription.interval,
            "status": subscription.status,
            "trial_end": subscription.trial_end,
            "current_period_end": subscription.current_period_end,
            "cancel_at_period_end": subscription.cancel_at_period_end,
            "next_invoice": summary.next_invoice,
            "next_invoice_unavailable": summary.next_invoice_unavailable,
            "credits": {
                "balance": summary.credits.balance,
                "held": summary.credits_held,
                "available": summary.credits.balance - summary.credits_held,
                "low_balance": summary.credits.low_balance,
            },
            "open_invoices": summary.open_invoices,
            "amount_due": summary.amount_due,
            "currency": summary.currency,
            "usage": summary.usage,
        }
        return Response(self.OutputSerializer(data).data)


class BillingHistoryApi(OrganizationApi):
    """Payments, invoices, statements, credit purchases and refunds, newest first, paginated
    (`?page=&page_size=`); `kind` (repeatable or comma-separated), `start` (inclusive), `end`
    (exclusive)."""

    pagination_class = PageNumberPagination  # documents the paginated answer (config.schema)

    class FilterSerializer(serializers.Serializer):
        kind = serializers.ListField(
            child=serializers.ChoiceField(choices=[k.value for k in HistoryKind]), required=False
        )
        start = serializers.DateTimeField(required=False)
        end = serializers.DateTimeField(required=False)
        page = StrictIntegerField(min_value=1, max_value=MAX_HISTORY_PAGE, default=1)
        page_size = StrictIntegerField(
            min_value=1, max_value=1_000_000, default=PageNumberPagination.page_size
        )

        def validate(self, attrs):
            for name in ("start", "end"):
                moment = attrs.get(name)
                if moment is not None and not HISTORY_FROM <= moment < HISTORY_TO:
                    raise serializers.ValidationError({name: ["Must be between 1970 and 2100."]})
            if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
                raise serializers.ValidationError({"end": ["end must not be before start."]})
            attrs["page_size"] = min(attrs["page_size"], PageNumberPagination.max_page_size)
            return attrs

    class EntrySerializer(serializers.Serializer):
        kind = serializers.CharField()
        id = serializers.CharField()
        occurred_at = serializers.DateTimeField()
        description = serializers.CharField()
        amount = serializers.IntegerField()
        currency = serializers.CharField()
        status = serializers.CharField()

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", enum=[k.value for k in HistoryKind], many=True),
            OpenApiParameter("start", OpenApiTypes.DATETIME, description="Inclusive."),
            OpenApiParameter("end", OpenApiTypes.DATETIME, description="Exclusive."),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT),
        ],
        responses=EntrySerializer(many=True),
    )
    def get(self, request, org):
        params = {key: request.query_params.get(key) for key in ("start", "end", "page", "page_size")}
        params = {key: value for key, value in params.items() if value not in (None, "")}
        kinds = [k for value in request.query_params.getlist("kind") for k in value.split(",") if k]
        if kinds:
            params["kind"] = kinds
        filters = self.FilterSerializer(data=params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        page, size = data["page"], data["page_size"]
        result = billing_history_page(
            organization=self.organization,
            offset=(page - 1) * size,
            limit=size,
            kinds=data.get("kind"),
            start=data.get("start"),
            end=data.get("end"),
        )
        url = request.build_absolute_uri()
        previous = None
        if page > 1:
            previous = (
                replace_query_param(url, "page", page - 1) if page > 2 else remove_query_param(url, "page")
            )
        return Response(
            {
                "count": result.count,
                "next": replace_query_param(url, "page", page + 1) if page * size < result.count else None,
                "previous": previous,
                "results": self.EntrySerializer(result.entries, many=True).data,
            }
        )

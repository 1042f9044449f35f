"""REST API of the invoices app (under `/api/v1/organizations/{org}`): one view per operation;
the services and selectors do the work. Who may call what is `billing.access` (reads: any
member; generating a statement and sending an invoice: `pay`, the billing role and up; payment
links: `manage`, admin and up)."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from billing.access import Action
from billing.tenancy import OrganizationApi
from config.pagination import PageNumberPagination
from credits.formatting import MAX_CHARGE_MINOR_UNITS

from .documents import invoice_document_filename, invoice_document_pdf
from .models import InvoiceKind, InvoiceStatus
from .selectors import invoice_get, invoice_list
from .services import invoice_send_queue, payment_link_create


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
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=InvoiceStatus.choices, required=False)
        kind = serializers.ChoiceField(choices=InvoiceKind.choices, required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=InvoiceStatus.values),
            OpenApiParameter("kind", enum=InvoiceKind.values),
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
        amount = serializers.IntegerField(
            min_value=1, max_value=MAX_CHARGE_MINOR_UNITS, help_text="Minor units."
        )
        currency = serializers.RegexField(r"^[A-Za-z]{3}$", max_length=3)
        days_until_due = serializers.IntegerField(min_value=0, max_value=365)
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

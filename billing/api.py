"""REST API of the billing app: organizations, members, API keys, the plan catalogue, the subscription,
payment methods and the Stripe-hosted portal."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.formatting import moment_str
from config.inputs import StrictIntegerField
from config.negotiation import JsonFirstNegotiation
from config.pagination import PageNumberPagination
from config.redirects import RedirectUrlField

from .access import Action
from .models import ApiKey, Interval, Organization, PlatformKey, PlatformScope, Role
from .selectors import (
    api_key_get,
    api_key_list,
    membership_list,
    organization_billing_state,
    organization_list_for_user,
    payment_method_list,
    plan_list,
    subscription_summary_get,
)
from .services import (
    InvoicePreview,
    api_key_create,
    api_key_revoke,
    organization_create,
    payment_method_attach,
    payment_method_detach,
    payment_method_set_default,
    portal_session_create,
    setup_intent_create,
    subscription_cancel,
    subscription_change,
    subscription_change_preview,
    subscription_create,
    subscription_resume,
    subscription_upcoming_invoice_get,
)
from .tenancy import OrganizationApi


class OrganizationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    billing_email = serializers.EmailField()
    plan = serializers.CharField()
    subscription_status = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


def _organization_out(organization: Organization) -> dict:
    state = organization_billing_state(organization=organization)
    return OrganizationOutputSerializer(
        {
            "id": organization.id,
            "name": organization.name,
            "billing_email": organization.billing_email,
            "plan": state.plan,
            "subscription_status": state.status,
            "created_at": organization.created_at,
        }
    ).data


class OrganizationListCreateApi(APIView):
    pagination_class = PageNumberPagination  # documents the paginated answer (config.schema)

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        billing_email = serializers.EmailField()

    @extend_schema(responses=OrganizationOutputSerializer(many=True))
    def get(self, request):
        if isinstance(request.auth, ApiKey):
            queryset = Organization.objects.filter(pk=request.auth.organization_id)
        elif isinstance(request.auth, PlatformKey):
            if PlatformScope.ORGANIZATIONS_READ not in request.auth.scopes:
                raise exceptions.PermissionDenied(
                    f"This platform key lacks the {PlatformScope.ORGANIZATIONS_READ} scope."
                )
            queryset = Organization.objects.order_by("name", "id")
        else:
            queryset = organization_list_for_user(user=request.user)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([_organization_out(o) for o in page])

    @extend_schema(request=InputSerializer, responses={201: OrganizationOutputSerializer})
    def post(self, request):
        if isinstance(request.auth, ApiKey | PlatformKey):
            raise exceptions.PermissionDenied("Organizations are created by people, not by API keys.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = organization_create(**serializer.validated_data, owner=request.user)
        return Response(_organization_out(organization), status=status.HTTP_201_CREATED)


class OrganizationDetailApi(OrganizationApi):
    @extend_schema(responses=OrganizationOutputSerializer)
    def get(self, request, org):
        return Response(_organization_out(self.organization))


class MembershipListApi(OrganizationApi):
    pagination_class = PageNumberPagination  # documents the paginated answer (config.schema)

    class OutputSerializer(serializers.Serializer):
        user_id = serializers.IntegerField(source="user.id")
        email = serializers.EmailField(source="user.email")
        role = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, org):
        queryset = membership_list(organization=self.organization)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    role = serializers.CharField()
    prefix = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyListCreateApi(OrganizationApi):
    """Admins list and create the organization's API keys; the key is in the 201 answer only."""

    pagination_class = PageNumberPagination  # documents the paginated answer (config.schema)

    actions = {"GET": Action.MANAGE, "POST": Action.MANAGE}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        role = serializers.ChoiceField(choices=[Role.ADMIN, Role.BILLING, Role.MEMBER], default=Role.ADMIN)

    class CreatedSerializer(ApiKeyOutputSerializer):
        key = serializers.CharField(help_text="The secret. Shown once, never again.")

    @extend_schema(responses=ApiKeyOutputSerializer(many=True))
    def get(self, request, org):
        queryset = api_key_list(organization=self.organization)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(ApiKeyOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: CreatedSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = request.user if request.auth is None else None
        created = api_key_create(organization=self.organization, created_by=user, **serializer.validated_data)
        data = {**ApiKeyOutputSerializer(created.api_key).data, "key": created.raw_key}
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(OrganizationApi):
    actions = {"DELETE": Action.MANAGE}

    @extend_schema(request=None, responses={200: ApiKeyOutputSerializer})
    def delete(self, request, org, key_id):
        api_key = api_key_get(organization=self.organization, key_id=key_id)
        if api_key is None:
            raise exceptions.NotFound("API key not found.")
        return Response(ApiKeyOutputSerializer(api_key_revoke(api_key=api_key)).data)


# --------------------------------------------------------------------------- catalogue (public)
class PlanListApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    class OutputSerializer(serializers.Serializer):
        code = serializers.CharField()
        name = serializers.CharField()
        description = serializers.CharField()
        trial_days = serializers.IntegerField()
        included_credits = serializers.DecimalField(max_digits=20, decimal_places=4, normalize_output=True)
        limits = serializers.DictField(child=serializers.IntegerField(allow_null=True))
        features = serializers.ListField(child=serializers.CharField())
        prices = serializers.SerializerMethodField()

        def get_prices(self, plan) -> list[dict]:
            return [
                {
                    "id": p.stripe_price_id or None,
                    "interval": p.interval,
                    "amount": p.amount,
                    "currency": p.currency,
                }
                for p in plan.prices.all()
                if p.active
            ]

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response(self.OutputSerializer(plan_list(), many=True).data)


# --------------------------------------------------------------------------- subscription
class SubscriptionOutputSerializer(serializers.Serializer):
    plan = serializers.CharField()
    interval = serializers.CharField(allow_null=True)
    status = serializers.CharField()
    trial_end = serializers.DateTimeField(allow_null=True)
    current_period_start = serializers.DateTimeField(allow_null=True)
    current_period_end = serializers.DateTimeField(allow_null=True)
    cancel_at_period_end = serializers.BooleanField()
    stripe_id = serializers.CharField(allow_null=True)
    pay_url = serializers.URLField(
        allow_null=True, help_text="Stripe's page to pay the latest invoice while it is open (past due)."
    )


def _subscription_out(organization: Organization) -> dict:
    """What SubscriptionOutputSerializer answers (it documents the shape), built directly from
    the summary, which reads the organization fresh with its plan (by id, whatever the caller
    held) in the same round trip as the subscription."""
    summary = subscription_summary_get(organization=organization)
    return {
        "plan": summary.plan.code,
        "interval": summary.interval,
        "status": summary.status,
        "trial_end": moment_str(summary.trial_end),
        "current_period_start": moment_str(summary.current_period_start),
        "current_period_end": moment_str(summary.current_period_end),
        "cancel_at_period_end": bool(summary.cancel_at_period_end),
        "stripe_id": summary.stripe_id,
        "pay_url": summary.pay_url,
    }


class SubscriptionApi(OrganizationApi):
    actions = {"POST": Action.PAY, "PATCH": Action.PAY}
    content_negotiation_class = JsonFirstNegotiation

    class CreateInputSerializer(serializers.Serializer):
        plan = serializers.CharField()
        interval = serializers.ChoiceField(choices=Interval.choices, default=Interval.MONTH)
        payment_method = serializers.CharField(required=False, allow_blank=False)
        trial_days = StrictIntegerField(required=False, min_value=0, max_value=730)

    class ChangeInputSerializer(serializers.Serializer):
        plan = serializers.CharField(required=False)
        interval = serializers.ChoiceField(choices=Interval.choices, required=False)
        proration_date = serializers.DateTimeField(
            required=False,
            help_text="From `GET /subscription/upcoming-invoice`: prorate exactly as previewed.",
        )

    @extend_schema(responses=SubscriptionOutputSerializer)
    def get(self, request, org):
        return Response(_subscription_out(self.organization))

    @extend_schema(request=CreateInputSerializer, responses={201: SubscriptionOutputSerializer})
    def post(self, request, org):
        serializer = self.CreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription_create(organization=self.organization, **serializer.validated_data)
        return Response(_subscription_out(self.organization), status=status.HTTP_201_CREATED)

    @extend_schema(request=ChangeInputSerializer, responses=SubscriptionOutputSerializer)
    def patch(self, request, org):
        serializer = self.ChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription_change(organization=self.organization, **serializer.validated_data)
        return Response(_subscription_out(self.organization))


class InvoicePreviewOutputSerializer(serializers.Serializer):
    class LineSerializer(serializers.Serializer):
        description = serializers.CharField()
        amount = serializers.IntegerField()
        proration = serializers.BooleanField()
        period_start = serializers.DateTimeField(allow_null=True)
        period_end = serializers.DateTimeField(allow_null=True)

    plan = serializers.CharField(source="plan.code", allow_null=True, default=None)
    interval = serializers.CharField(allow_null=True)
    amount_due = serializers.IntegerField()
    total = serializers.IntegerField()
    currency = serializers.CharField()
    next_payment_attempt = serializers.DateTimeField(allow_null=True)
    proration_amount = serializers.IntegerField(
        help_text="What the change itself costs (negative: a credit)."
    )
    proration_date = serializers.DateTimeField(allow_null=True)
    lines = LineSerializer(many=True)


class SubscriptionUpcomingInvoiceApi(OrganizationApi):
    """The subscription's next invoice as Stripe previews it; with `plan` and/or `interval`, the
    next invoice after changing to them (prorations first, `proration_amount` their sum). Pass
    `proration_date` to `PATCH /subscription` to change at exactly these figures. Without a
    subscription, or when it ends at the period end, an empty invoice (no lines, nothing due); a
    change preview without a subscription is a 404."""

    class FilterSerializer(serializers.Serializer):
        plan = serializers.CharField(required=False, max_length=50)
        interval = serializers.ChoiceField(choices=Interval.choices, required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("plan", str, description="Preview a change to this plan."),
            OpenApiParameter(
                "interval", enum=Interval.values, description="Preview a change to this interval."
            ),
        ],
        responses=InvoicePreviewOutputSerializer,
    )
    def get(self, request, org):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        if filters.validated_data:
            preview = subscription_change_preview(organization=self.organization, **filters.validated_data)
        else:
            preview = subscription_upcoming_invoice_get(organization=self.organization)
            if preview is None:  # no subscription, or one that ends at the period end: nothing to pay
                summary = subscription_summary_get(organization=self.organization)
                preview = InvoicePreview(
                    plan=summary.plan,
                    interval=summary.interval,
                    amount_due=0,
                    total=0,
                    currency="usd",
                    next_payment_attempt=None,
                    proration_amount=0,
                    proration_date=None,
                    lines=[],
                )
        return Response(InvoicePreviewOutputSerializer(preview).data)


class SubscriptionCancelApi(OrganizationApi):
    actions = {"POST": Action.PAY}

    class InputSerializer(serializers.Serializer):
        immediately = serializers.BooleanField(default=False)

    @extend_schema(request=InputSerializer, responses=SubscriptionOutputSerializer)
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subscription_cancel(organization=self.organization, **serializer.validated_data)
        return Response(_subscription_out(self.organization))


class SubscriptionResumeApi(OrganizationApi):
    actions = {"POST": Action.PAY}

    @extend_schema(request=None, responses=SubscriptionOutputSerializer)
    def post(self, request, org):
        subscription_resume(organization=self.organization)
        return Response(_subscription_out(self.organization))


# --------------------------------------------------------------------------- payment methods
class PaymentMethodOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    brand = serializers.CharField()
    last4 = serializers.CharField()
    exp_month = serializers.IntegerField(allow_null=True)
    exp_year = serializers.IntegerField(allow_null=True)
    is_default = serializers.BooleanField()


class PaymentMethodListCreateApi(OrganizationApi):
    actions = {"POST": Action.PAY}

    class InputSerializer(serializers.Serializer):
        payment_method = serializers.CharField()
        set_default = serializers.BooleanField(default=False)

    @extend_schema(responses=PaymentMethodOutputSerializer(many=True))
    def get(self, request, org):
        return Response(
            PaymentMethodOutputSerializer(payment_method_list(organization=self.organization), many=True).data
        )

    @extend_schema(request=InputSerializer, responses={201: PaymentMethodOutputSerializer})
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pm = payment_method_attach(
            organization=self.organization,
            payment_method_id=serializer.validated_data["payment_method"],
            set_default=serializer.validated_data["set_default"],
        )
        row = next(r for r in payment_method_list(organization=self.organization) if r["id"] == pm.id)
        return Response(PaymentMethodOutputSerializer(row).data, status=status.HTTP_201_CREATED)


class SetupIntentApi(OrganizationApi):
    actions = {"POST": Action.PAY}

    class OutputSerializer(serializers.Serializer):
        client_secret = serializers.CharField()

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request, org):
        return Response({"client_secret": setup_intent_create(organization=self.organization)})


class PaymentMethodDefaultApi(OrganizationApi):
    actions = {"POST": Action.PAY}

    @extend_schema(request=None, responses=PaymentMethodOutputSerializer(many=True))
    def post(self, request, org, pm):
        payment_method_set_default(organization=self.organization, payment_method_id=pm)
        return Response(
            PaymentMethodOutputSerializer(payment_method_list(organization=self.organization), many=True).data
        )


class PaymentMethodDetailApi(OrganizationApi):
    actions = {"DELETE": Action.PAY}

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, org, pm):
        payment_method_detach(organization=self.organization, payment_method_id=pm)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- hosted pages
class PortalSessionApi(OrganizationApi):
    actions = {"POST": Action.PAY}

    class InputSerializer(serializers.Serializer):
        return_url = RedirectUrlField()

    class OutputSerializer(serializers.Serializer):
        url = serializers.URLField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request, org):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        session = portal_session_create(organization=self.organization, **serializer.validated_data)
        return Response({"url": session.url})

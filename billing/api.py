"""REST API of the billing app: organizations (and, with later work, subscriptions and payment methods)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import OrganizationApi
from config.pagination import PageNumberPagination

from .models import ApiKey, Organization
from .selectors import organization_billing_state, organization_list_for_user
from .services import organization_create


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
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        billing_email = serializers.EmailField()

    @extend_schema(responses=OrganizationOutputSerializer(many=True))
    def get(self, request):
        if isinstance(request.auth, ApiKey):
            queryset = Organization.objects.filter(pk=request.auth.organization_id)
        else:
            queryset = organization_list_for_user(user=request.user)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([_organization_out(o) for o in page])

    @extend_schema(request=InputSerializer, responses={201: OrganizationOutputSerializer})
    def post(self, request):
        if isinstance(request.auth, ApiKey):
            raise exceptions.PermissionDenied("An API key belongs to one organization and cannot create others.")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = organization_create(**serializer.validated_data, owner=request.user)
        return Response(_organization_out(organization), status=status.HTTP_201_CREATED)


class OrganizationDetailApi(OrganizationApi):
    @extend_schema(responses=OrganizationOutputSerializer)
    def get(self, request, org):
        return Response(_organization_out(self.organization))

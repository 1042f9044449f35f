"""REST API of the billing app: organizations (and, with later work, subscriptions and payment methods)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import OrganizationApi
from config.pagination import PageNumberPagination

from .models import ApiKey, Organization, Role
from .selectors import (
    api_key_get,
    api_key_list,
    membership_list,
    organization_billing_state,
    organization_list_for_user,
)
from .services import api_key_create, api_key_revoke, organization_create


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
            raise exceptions.PermissionDenied(
                "An API key belongs to one organization and cannot create others."
            )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = organization_create(**serializer.validated_data, owner=request.user)
        return Response(_organization_out(organization), status=status.HTTP_201_CREATED)


class OrganizationDetailApi(OrganizationApi):
    @extend_schema(responses=OrganizationOutputSerializer)
    def get(self, request, org):
        return Response(_organization_out(self.organization))


class MembershipListApi(OrganizationApi):
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

    required_role = Role.ADMIN

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
        user = request.user if not isinstance(request.auth, ApiKey) else None
        created = api_key_create(organization=self.organization, created_by=user, **serializer.validated_data)
        data = {**ApiKeyOutputSerializer(created.api_key).data, "key": created.raw_key}
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(OrganizationApi):
    required_role = Role.ADMIN

    @extend_schema(request=None, responses=ApiKeyOutputSerializer)
    def delete(self, request, org, key_id):
        api_key = api_key_get(organization=self.organization, key_id=key_id)
        if api_key is None:
            raise exceptions.NotFound("API key not found.")
        return Response(ApiKeyOutputSerializer(api_key_revoke(api_key=api_key)).data)

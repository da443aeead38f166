"""REST edges of customers. Thin: validate, call a command, represent."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from sharedkernel.api.fields import CurrencyField
from sharedkernel.api.permissions import CustomerScopedMixin, IsStaff
from subscriptions import commands
from subscriptions.api.serializers import CustomerOut
from subscriptions.models import Customer


class CustomerFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(lookup_expr="iexact")
    test_clock = django_filters.UUIDFilter(field_name="test_clock_id")

    class Meta:
        model = Customer
        fields = ["email", "country", "currency", "test_clock"]


class CustomerViewSet(CustomerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Staff create customers and see all of them; a customer sees only itself."""

    serializer_class = CustomerOut
    filterset_class = CustomerFilter
    customer_field = "id"

    class CustomerInput(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        email = serializers.EmailField(max_length=254)
        currency = CurrencyField()
        country = serializers.RegexField(r"^[A-Za-z]{2}$", error_messages={"invalid": "An ISO 3166-1 alpha-2 code."})
        region = serializers.CharField(max_length=10, required=False, allow_blank=True, default="")
        tax_exempt = serializers.BooleanField(default=False)
        test_clock = serializers.UUIDField(required=False, allow_null=True, default=None)

    class CustomerCreated(CustomerOut):
        api_key = serializers.CharField(read_only=True, help_text="Shown once: the customer's API token.")

        class Meta(CustomerOut.Meta):
            fields = [*CustomerOut.Meta.fields, "api_key"]

    def get_queryset(self):
        return self.scope_queryset(Customer.objects.order_by("-created_at"))

    def get_permissions(self):
        return [IsStaff()] if self.action == "create" else super().get_permissions()

    @extend_schema(request=CustomerInput, responses={201: CustomerCreated})
    def create(self, request):
        data = self.CustomerInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        customer, api_key = commands.register_customer(
            **{k: v for k, v in values.items() if k != "test_clock"},
            test_clock_id=values["test_clock"],
            with_api_key=True,
        )
        body = CustomerOut(customer).data | {"api_key": api_key}
        return Response(body, status=status.HTTP_201_CREATED)

"""REST edges of Notifications: webhook endpoints and deliveries, the notification log, bounces."""

from __future__ import annotations

import hmac

import django_filters
from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import commands
from notifications.models import Notification, WebhookDelivery, WebhookEndpoint
from sharedkernel.api.permissions import CustomerScopedMixin, customer_id_of
from sharedkernel.api.schema import error_response
from sharedkernel.errors import InvalidInput, NotFound


# A row of one customer's (no customer: staff's, for all of them), shown as ``customer``. No
# docstring: the schema would show it as the description of every serializer built on it.
class _OwnedByACustomer(serializers.ModelSerializer):
    customer = serializers.UUIDField(source="customer_id", allow_null=True)


class EndpointOut(_OwnedByACustomer):
    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "customer",
            "url",
            "events",
            "active",
            "failing_since",
            "disabled_at",
            "disabled_reason",
            "created_at",
        ]


class EndpointCreated(EndpointOut):
    class Meta(EndpointOut.Meta):
        fields = [*EndpointOut.Meta.fields, "secret"]


class DeliveryOut(serializers.ModelSerializer):
    endpoint = serializers.UUIDField(source="endpoint_id")
    attempts_log = serializers.SerializerMethodField()

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_latency_ms",
            "last_error",
            "created_at",
            "delivered_at",
            "attempts_log",
        ]

    def get_attempts_log(self, delivery) -> list[dict]:
        return [
            {
                "number": a.number,
                "at": serializers.DateTimeField().to_representation(a.at),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "error": a.error,
            }
            for a in delivery.attempt_rows.all()
        ]


class NotificationOut(_OwnedByACustomer):
    class Meta:
        model = Notification
        fields = [
            "id",
            "customer",
            "email",
            "template",
            "subject",
            "status",
            "error",
            "cause_event_id",
            "cause_event_type",
            "created_at",
            "sent_at",
            "bounced_at",
        ]


class EndpointViewSet(
    CustomerScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """A customer registers endpoints for their own events; staff may register for any customer
    (or, with no customer, for all)."""

    serializer_class = EndpointOut

    class EndpointInput(serializers.Serializer):
        url = serializers.URLField(max_length=500)
        events = serializers.ListField(
            child=serializers.CharField(max_length=100), default=["*"], allow_empty=False, max_length=100
        )
        customer = serializers.UUIDField(required=False, allow_null=True)

    def get_queryset(self):
        return self.scope_queryset(WebhookEndpoint.objects.all())

    @extend_schema(
        request=EndpointInput,
        responses={201: EndpointCreated},
        summary="Register an endpoint; the signing secret is shown this once",
    )
    def create(self, request):
        data = self.EndpointInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer = values.get("customer") if request.user.is_staff else customer_id_of(request.user)
        if not request.user.is_staff and customer is None:
            raise NotFound("No such customer.")
        endpoint = commands.register_endpoint(url=values["url"], events=values["events"], customer_id=customer)
        return Response(EndpointCreated(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, endpoint):
        commands.remove_endpoint(endpoint_id=endpoint.pk)

    @extend_schema(request=None, responses=EndpointOut, summary="Turn a disabled endpoint back on")
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        endpoint = commands.enable_endpoint(endpoint_id=self.get_object().pk)
        return Response(EndpointOut(endpoint).data)

    @extend_schema(request=None, responses=EndpointOut, summary="Stop sending to this endpoint")
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        endpoint = commands.disable_endpoint(endpoint_id=self.get_object().pk)
        return Response(EndpointOut(endpoint).data)

    @extend_schema(responses=DeliveryOut(many=True), summary="Recent deliveries to this endpoint")
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        endpoint = self.get_object()
        page = self.paginate_queryset(endpoint.deliveries.prefetch_related("attempt_rows").order_by("-created_at"))
        return self.get_paginated_response(DeliveryOut(page, many=True).data)


class DeliveryViewSet(CustomerScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = DeliveryOut
    customer_field = "endpoint__customer_id"

    def get_queryset(self):
        return self.scope_queryset(WebhookDelivery.objects.prefetch_related("attempt_rows"))

    @extend_schema(request=None, responses=DeliveryOut, summary="Send this delivery again now")
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        delivery = self.get_object()
        commands.redeliver(delivery_id=delivery.pk)
        return Response(DeliveryOut(self.get_queryset().get(pk=delivery.pk)).data)


class NotificationFilter(django_filters.FilterSet):
    customer = django_filters.UUIDFilter(field_name="customer_id")

    class Meta:
        model = Notification
        fields = ["customer", "status", "template"]


class NotificationViewSet(
    CustomerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = NotificationOut
    filterset_class = NotificationFilter

    def get_queryset(self):
        return self.scope_queryset(Notification.objects.order_by("-created_at"))


class BounceView(APIView):
    """The e-mail provider's bounce callback: ``{"email", "reason", "message_id"?}`` with
    ``Authorization: Bearer <BOUNCE_WEBHOOK_TOKEN>``."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(
        request=inline_serializer(
            "Bounce",
            {
                "email": serializers.EmailField(),
                "reason": serializers.CharField(),
                "message_id": serializers.CharField(required=False),
            },
        ),
        responses={202: None, 404: error_response("No such endpoint: the bearer token is missing or wrong.")},
        summary="Bounce callback of the e-mail provider",
    )
    def post(self, request):
        token = getattr(settings, "BOUNCE_WEBHOOK_TOKEN", "")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(token, given):
            raise NotFound("No such endpoint.")
        body = request.data if isinstance(request.data, dict) else {}
        if not body.get("email"):
            raise InvalidInput("Say which address bounced.", details={"email": "required"})
        commands.record_bounce(
            email=str(body["email"]),
            reason=str(body.get("reason", "bounced")),
            message_id=str(body.get("message_id", "")),
        )
        return Response(status=status.HTTP_202_ACCEPTED)

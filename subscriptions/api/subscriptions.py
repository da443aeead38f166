"""REST edges of subscriptions: each action calls its command. Thin: validate, call a command, represent."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from sharedkernel.api.fields import CurrencyField, MoneyField, UnitRateField
from sharedkernel.api.permissions import CustomerScopedMixin, IsStaff, customer_id_of
from sharedkernel.api.views import StoredEventSerializer
from subscriptions import commands, queries
from subscriptions.api.serializers import SubscriptionOut
from subscriptions.api.usage import usage_payload
from subscriptions.models import Customer, Plan, ResumeInitiator, Subscription, SubscriptionStatus


class SubscriptionFilter(django_filters.FilterSet):
    customer = django_filters.UUIDFilter(field_name="customer_id")
    plan = django_filters.UUIDFilter(field_name="plan_id")
    status = django_filters.ChoiceFilter(choices=SubscriptionStatus.choices)

    class Meta:
        model = Subscription
        fields = ["customer", "plan", "status"]


class VersionedInput(serializers.Serializer):
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Optional: refuse with 409 concurrent_update unless this is the current version.",
    )


class SubscriptionViewSet(
    CustomerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = SubscriptionOut
    filterset_class = SubscriptionFilter

    class CreateInput(serializers.Serializer):
        customer = serializers.UUIDField(required=False, help_text="Defaults to the calling customer.")
        plan = serializers.UUIDField()
        currency = CurrencyField(required=False)
        trial = serializers.BooleanField(default=False)

    class ChangePlanInput(VersionedInput):
        plan = serializers.UUIDField()

    class CancelInput(VersionedInput):
        reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        at_period_end = serializers.BooleanField(default=False)

    class SuspendInput(VersionedInput):
        pass

    def get_queryset(self):
        return self.scope_queryset(Subscription.objects.order_by("-created_at"))

    def get_permissions(self):
        if self.action in ("suspend", "approve_plan_change", "decline_plan_change"):
            return [IsStaff()]
        return super().get_permissions()

    def _respond(self, sub: Subscription, code: int = status.HTTP_200_OK) -> Response:
        # The aggregate the command saved, at the version it wrote: a fresh read after commit
        # could show what a concurrent request did instead.
        return Response(SubscriptionOut(sub).data, status=code)

    def _input(self, serializer_class):
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        return data.validated_data

    @extend_schema(request=CreateInput, responses={201: SubscriptionOut})
    def create(self, request):
        values = self._input(self.CreateInput)
        own = customer_id_of(request.user)
        customer_id = values.get("customer") or own
        if customer_id is None:
            raise serializers.ValidationError({"customer": ["Required."]})
        visible = Customer.objects.filter(pk=customer_id)
        if not request.user.is_staff and customer_id != own:
            visible = visible.none()
        if not visible.exists():
            raise serializers.ValidationError({"customer": ["No such customer."]})
        if not Plan.objects.filter(pk=values["plan"]).exists():
            raise serializers.ValidationError({"plan": ["No such plan."]})
        sub = commands.subscribe(
            customer_id=customer_id, plan_id=values["plan"], currency=values.get("currency"), trial=values["trial"]
        )
        return self._respond(sub, status.HTTP_201_CREATED)

    @extend_schema(
        responses=inline_serializer(
            "SubscriptionUsage",
            {
                "subscription": serializers.UUIDField(),
                "period_start": serializers.DateTimeField(),
                "period_end": serializers.DateTimeField(),
                "metrics": inline_serializer(
                    "MetricUsage",
                    {
                        "metric": serializers.CharField(),
                        "used": serializers.IntegerField(),
                        "included": serializers.IntegerField(),
                        "overage": serializers.IntegerField(),
                        "rate": UnitRateField(allow_null=True, help_text="Price per unit over the included quantity."),
                        "overage_amount": MoneyField(
                            allow_null=True, help_text="overage × rate, rounded half-up once to the minor unit."
                        ),
                    },
                    many=True,
                ),
            },
        ),
        summary="Usage of the open period per metric: used, included, overage",
    )
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        return Response(usage_payload(Subscription.objects.select_related("plan").get(pk=self.get_object().pk)))

    @extend_schema(
        request=ChangePlanInput,
        responses={200: SubscriptionOut, 202: OpenApiResponse(SubscriptionOut, "Waiting for staff approval.")},
    )
    @action(detail=True, methods=["post"], url_path="change-plan")
    def change_plan(self, request, pk=None):
        sub = self.get_object()
        values = self._input(self.ChangePlanInput)
        if not Plan.objects.filter(pk=values["plan"]).exists():
            raise serializers.ValidationError({"plan": ["No such plan."]})
        sub, changed = commands.change_plan(
            subscription_id=sub.pk,
            plan_id=values["plan"],
            by_staff=request.user.is_staff,
            expected_version=values.get("version"),
        )
        return self._respond(sub, status.HTTP_200_OK if changed else status.HTTP_202_ACCEPTED)

    @extend_schema(request=CancelInput, responses=SubscriptionOut)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        sub = self.get_object()
        values = self._input(self.CancelInput)
        sub = commands.cancel_subscription(
            subscription_id=sub.pk,
            reason=values["reason"],
            at_period_end=values["at_period_end"],
            expected_version=values.get("version"),
        )
        return self._respond(sub)

    @extend_schema(request=VersionedInput, responses=SubscriptionOut)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        sub = self.get_object()
        values = self._input(VersionedInput)
        sub = commands.resume_subscription(
            subscription_id=sub.pk,
            initiator=ResumeInitiator.STAFF if request.user.is_staff else ResumeInitiator.CUSTOMER,
            expected_version=values.get("version"),
        )
        return self._respond(sub)

    @extend_schema(request=SuspendInput, responses=SubscriptionOut)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        sub = self.get_object()
        values = self._input(self.SuspendInput)
        sub = commands.suspend_subscription(subscription_id=sub.pk, expected_version=values.get("version"))
        return self._respond(sub)

    @extend_schema(request=None, responses=SubscriptionOut)
    @action(detail=True, methods=["post"], url_path="approve-plan-change")
    def approve_plan_change(self, request, pk=None):
        return self._respond(commands.approve_plan_change(subscription_id=self.get_object().pk))

    @extend_schema(request=None, responses=SubscriptionOut)
    @action(detail=True, methods=["post"], url_path="decline-plan-change")
    def decline_plan_change(self, request, pk=None):
        return self._respond(commands.decline_plan_change(subscription_id=self.get_object().pk))

    @extend_schema(responses=StoredEventSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])  # the list's filters do not apply to a timeline
    def events(self, request, pk=None):
        """The subscription's timeline: its own events and every event they led to (queries.timeline)."""
        sub = self.get_object()
        timeline = queries.timeline(sub)
        page = self.paginate_queryset(timeline)
        return self.get_paginated_response(StoredEventSerializer(page, many=True).data)

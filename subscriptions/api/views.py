"""REST edges of the Subscriptions context. Thin: validate, call a command, represent."""

from __future__ import annotations

import uuid

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from sharedkernel.api.fields import CurrencyField, MoneyField, UnitRateField
from sharedkernel.api.permissions import CustomerScopedMixin, IsStaff, customer_id_of
from sharedkernel.api.views import StoredEventSerializer
from sharedkernel.errors import InvalidInput
from subscriptions import commands, queries
from subscriptions.api.serializers import CustomerOut, OverageRatesField, PlanOut, PlanVersionOut, SubscriptionOut
from subscriptions.models import Customer, Plan, ResumeInitiator, Subscription, SubscriptionStatus
from subscriptions.usage_parsing import MAX_BATCH
from subscriptions.values import MAX_QUANTITY, BillingInterval, PlanTier

# -- plans -------------------------------------------------------------------------


class PlanFilter(django_filters.FilterSet):
    class Meta:
        model = Plan
        fields = ["tier", "interval", "archived", "code"]


class PlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The catalogue: anyone may read it; staff add and archive plans."""

    queryset = Plan.objects.prefetch_related("price_rows", "overage_rows").order_by("tier", "interval", "name")
    serializer_class = PlanOut
    filterset_class = PlanFilter

    class PlanInput(serializers.Serializer):
        code = serializers.SlugField(max_length=50)
        name = serializers.CharField(max_length=100)
        tier = serializers.ChoiceField(choices=[t.value for t in PlanTier])
        interval = serializers.ChoiceField(choices=[i.value for i in BillingInterval])
        trial_days = serializers.IntegerField(min_value=0, max_value=365, default=0)
        prices = serializers.ListField(child=MoneyField(), min_length=1)
        included_usage = serializers.DictField(
            child=serializers.IntegerField(min_value=0, max_value=MAX_QUANTITY), default=dict
        )
        overage_rates = OverageRatesField(default=dict)
        features = serializers.ListField(child=serializers.CharField(max_length=200), default=list)

    class VersionInput(serializers.Serializer):
        trial_days = serializers.IntegerField(min_value=0, max_value=365, default=0)
        prices = serializers.ListField(child=MoneyField(), min_length=1)
        included_usage = serializers.DictField(
            child=serializers.IntegerField(min_value=0, max_value=MAX_QUANTITY), default=dict
        )
        overage_rates = OverageRatesField(default=dict)
        features = serializers.ListField(child=serializers.CharField(max_length=200), default=list)

    def get_permissions(self):
        if self.action in ("list", "retrieve") or (self.action == "versions" and self.request.method == "GET"):
            return [AllowAny()]
        return [IsStaff()]

    @extend_schema(methods=["GET"], request=None, responses=PlanVersionOut(many=True))
    @extend_schema(methods=["POST"], request=VersionInput, responses={201: PlanVersionOut})
    @action(detail=True, methods=["get", "post"], pagination_class=None, filter_backends=[])
    def versions(self, request, pk=None):
        """The plan's versions, oldest first; POST makes a new one, current for new subscriptions from now."""
        plan = self.get_object()
        if request.method == "GET":
            return Response(PlanVersionOut(plan.versions.order_by("version"), many=True).data)
        data = self.VersionInput(data=request.data)
        data.is_valid(raise_exception=True)
        plan = commands.revise_plan(plan_id=plan.pk, name=plan.name, **data.validated_data)
        return Response(
            PlanVersionOut(plan.versions.get(version=plan.current_version)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=PlanInput, responses={201: PlanOut})
    def create(self, request):
        data = self.PlanInput(data=request.data)
        data.is_valid(raise_exception=True)
        plan = commands.define_plan(**data.validated_data)
        return Response(PlanOut(plan).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=PlanOut)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        plan = commands.archive_plan(plan_id=self.get_object().pk)
        return Response(PlanOut(plan).data)

    @extend_schema(request=None, responses=PlanOut)
    @action(detail=True, methods=["post"])
    def restore(self, request, pk=None):
        plan = commands.restore_plan(plan_id=self.get_object().pk)
        return Response(PlanOut(plan).data)


# -- customers ---------------------------------------------------------------------


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


# -- subscriptions -----------------------------------------------------------------


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
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The subscription's timeline: its own events and every event they led to (queries.timeline)."""
        sub = self.get_object()
        timeline = queries.timeline(sub)
        page = self.paginate_queryset(timeline)
        return self.get_paginated_response(StoredEventSerializer(page, many=True).data)


# -- usage -------------------------------------------------------------------------------

USAGE_RECORD = inline_serializer(
    "UsageRecordIn",
    {
        "subscription": serializers.UUIDField(),
        "metric": serializers.CharField(),
        "quantity": serializers.IntegerField(min_value=0, max_value=MAX_QUANTITY),
        "timestamp": serializers.DateTimeField(),
        "idempotency_key": serializers.CharField(max_length=100),
    },
)
USAGE_RESULT = inline_serializer(
    "UsageAccepted",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "errors": inline_serializer(
            "UsageRecordError",
            {
                "index": serializers.IntegerField(),
                "field": serializers.CharField(),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
            },
            many=True,
        ),
    },
)


class UsageView(APIView):
    """RecordUsage: one record or a list of up to 1,000.

    Records are validated one by one and plain Python does it (no serializer per
    record: a batch must cost milliseconds). Valid records are accepted even when
    others in the batch are refused; refusals come back in ``errors`` by index.
    """

    @extend_schema(
        request=USAGE_RECORD,
        responses={200: USAGE_RESULT},
        summary="Report usage: a record or a list of up to 1,000 (deduplicated by idempotency_key)",
    )
    def post(self, request):
        body = request.data if request.stream is not None else None  # no body is not an empty record
        records = body if isinstance(body, list) else [body] if isinstance(body, dict) else None
        if records is None or not records:
            raise InvalidInput("Send a usage record or a non-empty list of them.", details={"body": "record or list"})
        if len(records) > MAX_BATCH:
            raise InvalidInput(
                f"At most {MAX_BATCH} records per call; split the batch.",
                details={"body": f"{len(records)} records"},
            )
        own = None if request.user.is_staff else (customer_id_of(request.user) or uuid.UUID(int=0))
        result = commands.record_usage(records, customer_id=own)
        return Response({"accepted": result.accepted, "duplicates": result.duplicates, "errors": result.errors})


def usage_payload(sub: Subscription) -> dict:
    return {
        "subscription": str(sub.pk),
        "period_start": serializers.DateTimeField().to_representation(sub.current_period_start),
        "period_end": serializers.DateTimeField().to_representation(sub.current_period_end),
        "metrics": [
            {
                "metric": m.metric,
                "used": m.used,
                "included": m.included,
                "overage": m.overage,
                "rate": m.rate.to_json() if m.rate is not None else None,
                "overage_amount": m.overage_amount.to_json() if m.overage_amount is not None else None,
            }
            for m in queries.usage_of(sub)
        ],
    }

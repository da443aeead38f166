"""REST edges of plans: the catalogue and its versions. Thin: validate, call a command, represent."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from sharedkernel.api.fields import MoneyField
from sharedkernel.api.filters import TrueOrFalseFilter
from sharedkernel.api.permissions import IsStaff
from subscriptions import commands
from subscriptions.api.serializers import OverageRatesField, PlanOut, PlanVersionOut
from subscriptions.models import Plan
from subscriptions.values import MAX_QUANTITY, BillingInterval, PlanTier


class PlanFilter(django_filters.FilterSet):
    archived = TrueOrFalseFilter()

    class Meta:
        model = Plan
        fields = ["tier", "interval", "archived", "code"]


class PlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The catalogue: anyone may read it; staff add and archive plans."""

    queryset = Plan.objects.prefetch_related("price_rows", "overage_rows").order_by("tier", "interval", "name")
    serializer_class = PlanOut
    filterset_class = PlanFilter

    class VersionInput(serializers.Serializer):
        trial_days = serializers.IntegerField(min_value=0, max_value=365, default=0)
        prices = serializers.ListField(child=MoneyField(), min_length=1)
        included_usage = serializers.DictField(
            child=serializers.IntegerField(min_value=0, max_value=MAX_QUANTITY), default=dict
        )
        overage_rates = OverageRatesField(default=dict)
        features = serializers.ListField(child=serializers.CharField(max_length=200), default=list)

    class PlanInput(VersionInput):  # a new plan: its identity (fixed once created) and its first version's terms
        code = serializers.SlugField(max_length=50)
        name = serializers.CharField(max_length=100)
        tier = serializers.ChoiceField(choices=[t.value for t in PlanTier])
        interval = serializers.ChoiceField(choices=[i.value for i in BillingInterval])

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

"""REST edges of price migrations (staff). Thin: validate, call a command, represent."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from sharedkernel.api.fields import MoneyField
from sharedkernel.api.permissions import IsStaff
from subscriptions import commands, queries
from subscriptions.models import PriceMigration


class PriceMigrationOut(serializers.ModelSerializer):
    plan = serializers.UUIDField(source="plan_id", read_only=True)
    subscriptions = serializers.ListField(child=serializers.UUIDField(), source="subscription_ids", read_only=True)
    counts = serializers.SerializerMethodField()

    class Meta:
        model = PriceMigration
        fields = [
            "id",
            "plan",
            "to_version",
            "effective_from",
            "from_versions",
            "currencies",
            "subscriptions",
            "created_before",
            "status",
            "counts",
            "created_at",
            "started_at",
            "finished_at",
            "version",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "properties": {k: {"type": "integer"} for k in ("scheduled", "moved", "left_out", "cancelled")},
        }
    )
    def get_counts(self, migration: PriceMigration) -> dict:
        return queries.outcome_counts(migration)


class LeftOutOut(serializers.Serializer):
    subscription = serializers.UUIDField()
    reason = serializers.CharField()


class PreviewOut(serializers.Serializer):
    subscriptions = serializers.IntegerField()
    left_out = LeftOutOut(many=True)
    mrr_change = serializers.ListField(child=MoneyField())
    first_effective_at = serializers.DateTimeField(allow_null=True)
    last_effective_at = serializers.DateTimeField(allow_null=True)


class PriceMigrationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Staff move a plan's subscriptions to another version of it (API.md "Plan versions and price migrations")."""

    queryset = PriceMigration.objects.select_related("plan").order_by("-created_at")
    serializer_class = PriceMigrationOut
    permission_classes = [IsStaff]

    class DraftInput(serializers.Serializer):
        plan = serializers.UUIDField()
        to_version = serializers.IntegerField(min_value=1)
        effective_from = serializers.DateTimeField()
        from_versions = serializers.ListField(child=serializers.IntegerField(min_value=1), default=list)
        currencies = serializers.ListField(child=serializers.CharField(min_length=3, max_length=3), default=list)
        subscriptions = serializers.ListField(child=serializers.UUIDField(), default=list, max_length=100_000)
        created_before = serializers.DateTimeField(required=False, allow_null=True, default=None)

    @extend_schema(request=DraftInput, responses={201: PriceMigrationOut})
    def create(self, request):
        data = self.DraftInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        migration = commands.draft_price_migration(
            plan_id=values["plan"],
            to_version=values["to_version"],
            effective_from=values["effective_from"],
            from_versions=values["from_versions"],
            currencies=values["currencies"],
            subscription_ids=[str(s) for s in values["subscriptions"]],
            created_before=values["created_before"],
        )
        return Response(PriceMigrationOut(migration).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=PreviewOut)
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        result = queries.price_migration_preview(self.get_object())
        return Response(PreviewOut(result).data)

    def _transition(self, command):
        migration = command(migration_id=self.get_object().pk)
        return Response(PriceMigrationOut(migration).data)

    @extend_schema(request=None, responses=PriceMigrationOut)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._transition(commands.start_price_migration)

    @extend_schema(request=None, responses=PriceMigrationOut)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._transition(commands.pause_price_migration)

    @extend_schema(request=None, responses=PriceMigrationOut)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._transition(commands.resume_price_migration)

    @extend_schema(request=None, responses=PriceMigrationOut)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._transition(commands.cancel_price_migration)

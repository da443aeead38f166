"""Output representations of the Subscriptions API (field names are the contract)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from sharedkernel.api.fields import MONEY_SCHEMA, RATE_SCHEMA, MoneyField, parse_rate
from sharedkernel.values import UnitRate
from subscriptions.models import Customer, Plan, PlanVersion, Subscription
from subscriptions.values import CustomerDetails


@extend_schema_field({"type": "object", "additionalProperties": RATE_SCHEMA})
class OverageRatesField(serializers.Field):
    """Input: {"metric": rate} or {"metric": [rate, ...]} (one per price currency); a rate is
    ``{"amount", "currency"}`` with up to 6 decimals (sharedkernel.values.UnitRate)."""

    def to_representation(self, value: dict[str, list[UnitRate]]) -> dict:
        return {metric: rates[0].to_json() for metric, rates in value.items() if rates}

    def to_internal_value(self, data) -> dict[str, list[UnitRate]]:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                'Expected {"<metric>": rate} or {"<metric>": [rate, ...]}, a rate like Money.'
            )
        result: dict[str, list[UnitRate]] = {}
        for metric, value in data.items():
            items = value if isinstance(value, list) else [value]
            try:
                result[str(metric)] = [parse_rate(item) for item in items]
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({metric: exc.detail}) from None
        return result


class PlanOut(serializers.ModelSerializer):
    prices = serializers.SerializerMethodField()
    overage_rates = serializers.SerializerMethodField()
    overage_rates_by_currency = serializers.SerializerMethodField()

    class Meta:
        model = Plan
        fields = [
            "id",
            "code",
            "name",
            "tier",
            "interval",
            "trial_days",
            "prices",
            "included_usage",
            "overage_rates",
            "overage_rates_by_currency",
            "features",
            "archived",
            "created_at",
        ]

    @extend_schema_field({"type": "array", "items": MONEY_SCHEMA})
    def get_prices(self, plan: Plan) -> list[dict]:
        return [p.to_json() for p in plan.prices]

    @extend_schema_field({"type": "object", "additionalProperties": RATE_SCHEMA})
    def get_overage_rates(self, plan: Plan) -> dict:
        """Per metric, the rate in the plan's first price currency."""
        base = plan.prices[0].currency if plan.prices else None
        return {
            metric: next((r for r in rates if r.currency == base), rates[0]).to_json()
            for metric, rates in plan.overage_rates.items()
        }

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "array", "items": RATE_SCHEMA}})
    def get_overage_rates_by_currency(self, plan: Plan) -> dict:
        return {metric: [r.to_json() for r in rates] for metric, rates in plan.overage_rates.items()}


class PlanVersionOut(serializers.ModelSerializer):
    prices = serializers.ListField(child=MoneyField(), source="money_prices", read_only=True)
    overage_rates = serializers.SerializerMethodField()

    class Meta:
        model = PlanVersion
        fields = ["version", "prices", "included_usage", "overage_rates", "trial_days", "features", "current_from"]

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "array", "items": MONEY_SCHEMA}})
    def get_overage_rates(self, version: PlanVersion) -> dict:
        return version.overage_rates


class ScheduledPriceChangeOut(serializers.Serializer):
    price = MoneyField()
    plan_version = serializers.IntegerField()
    effective_at = serializers.DateTimeField()


class CustomerOut(serializers.ModelSerializer):
    test_clock = serializers.UUIDField(source="test_clock_id", allow_null=True, read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            *CustomerDetails.names(),
            "test_clock",
            "has_payment_method",
            "created_at",
        ]


class SubscriptionOut(serializers.ModelSerializer):
    customer = serializers.UUIDField(source="customer_id", read_only=True)
    plan = serializers.UUIDField(source="plan_id", read_only=True)
    pending_plan = serializers.UUIDField(source="pending_plan_id", read_only=True, allow_null=True)
    price = MoneyField(read_only=True)
    scheduled_price_change = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = [
            "id",
            "customer",
            "plan",
            "status",
            "currency",
            "price",
            "current_period_start",
            "current_period_end",
            "trial_start",
            "trial_end",
            "cancel_at_period_end",
            "cancelled_at",
            "cancellation_reason",
            "suspension_reason",
            "pending_plan",
            "plan_version",
            "scheduled_price_change",
            "created_at",
            "version",
        ]

    @extend_schema_field(ScheduledPriceChangeOut(allow_null=True))
    def get_scheduled_price_change(self, sub: Subscription) -> dict | None:
        if sub.scheduled_price is None:
            return None
        return ScheduledPriceChangeOut(
            {
                "price": sub.scheduled_price,
                "plan_version": sub.scheduled_version,
                "effective_at": sub.scheduled_effective_at,
            }
        ).data

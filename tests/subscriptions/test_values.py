from datetime import timedelta
from decimal import Decimal

import pytest

from sharedkernel.errors import InvalidInput
from sharedkernel.values import Money
from subscriptions.rules import Direction, PlanChangePolicy, PlanOption
from subscriptions.values import BillingInterval, PlanTier, SubscriptionPeriod, TrialDuration, UsageQuota
from tests.conftest import at
from tests.subscriptions.factories import plan


def test_period_contains_and_remaining():
    period = SubscriptionPeriod(at("2025-02-01 00:00"), at("2025-03-01 00:00"))
    assert period.contains(at("2025-02-01 00:00")) and not period.contains(at("2025-03-01 00:00"))
    assert period.remaining(at("2025-02-15 00:00")) == timedelta(days=14)
    assert period.remaining_fraction(at("2025-02-15 00:00")) == Decimal(14) / Decimal(28)
    assert period.remaining(at("2025-04-01 00:00")) == timedelta(0)


def test_period_must_be_aware_and_forward():
    with pytest.raises(ValueError):
        SubscriptionPeriod(at("2025-03-01 00:00"), at("2025-02-01 00:00"))
    with pytest.raises(ValueError):
        SubscriptionPeriod(at("2025-03-01 00:00").replace(tzinfo=None), at("2025-04-01 00:00"))


def test_annual_periods_from_a_leap_day_anchor():
    anchor = at("2024-02-29 12:00")
    assert SubscriptionPeriod.nth(anchor, BillingInterval.YEAR, 0).end == at("2025-02-28 12:00")
    assert SubscriptionPeriod.nth(anchor, BillingInterval.YEAR, 3).end == at("2028-02-29 12:00")


def test_trial_duration():
    assert TrialDuration(14).ends_at(at("2025-01-01 00:00")) == at("2025-01-15 00:00")
    assert TrialDuration.days_left(at("2025-01-15 00:00"), at("2025-01-14 23:00")) == 1
    assert TrialDuration.days_left(at("2025-01-15 00:00"), at("2025-01-15 00:00")) == 0
    with pytest.raises(ValueError):
        TrialDuration(-1)
    assert not TrialDuration(0).offered


def test_tiers_are_ordered_and_enterprise_needs_approval():
    assert PlanTier.BASIC.rank < PlanTier.PROFESSIONAL.rank < PlanTier.ENTERPRISE.rank
    assert PlanTier.ENTERPRISE.requires_approval and not PlanTier.PROFESSIONAL.requires_approval


def test_usage_quota_thresholds_cross_once():
    quota = UsageQuota("api_calls", 1000)
    assert quota.crossed(0, 799) == []
    assert quota.crossed(799, 800) == [80]
    assert quota.crossed(500, 1200) == [80, 100]
    assert quota.crossed(1000, 1500) == []
    assert quota.overage(1500) == 500 and quota.overage(10) == 0


def test_policy_direction_by_tier_then_monthly_price():
    def option(tier, interval, amount):
        return PlanOption(
            "x" + tier + interval + amount, PlanTier(tier), BillingInterval(interval), Money(amount, "USD")
        )

    p = PlanChangePolicy()
    assert p.direction(option("basic", "month", "10"), option("professional", "month", "5")) is Direction.UPGRADE
    assert (
        p.direction(option("professional", "year", "120"), option("professional", "month", "12")) is Direction.UPGRADE
    )
    assert (
        p.direction(option("professional", "month", "12"), option("professional", "year", "100")) is Direction.DOWNGRADE
    )


def test_plan_validation_names_the_fields():
    with pytest.raises(InvalidInput) as refused:
        plan(prices=("10.00 USD", "12.00 USD"), trial_days=400, included_usage={"api calls": -1})
    assert set(refused.value.details) >= {"prices", "trial_days", "included_usage"}
    with pytest.raises(InvalidInput) as refused:
        plan(
            prices=("10.00 USD", "9.00 EUR"),
            included_usage={"api_calls": 10},
            overage_rates={"api_calls": [Money("0.01", "USD")]},
        )
    assert "overage_rates" in refused.value.details


def test_plan_archive_and_restore_are_transitions():
    p = plan()
    p.archive(at=at("2025-02-01 00:00"))
    with pytest.raises(Exception, match="already archived"):
        p.archive(at=at("2025-02-02 00:00"))
    p.restore(at=at("2025-02-03 00:00"))
    assert not p.archived

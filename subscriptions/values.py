"""Value objects of the Subscriptions context (no Django here)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sharedkernel.periods import nth_period
from sharedkernel.values import Money, UnitRate


class PlanTier(StrEnum):
    """Basic < Professional < Enterprise. Enterprise changes need staff approval."""

    BASIC = "basic"
    PROFESSIONAL = "professional"
    ENTERPRISE = "enterprise"

    @property
    def rank(self) -> int:
        return list(PlanTier).index(self)

    @property
    def requires_approval(self) -> bool:
        return self is PlanTier.ENTERPRISE


class BillingInterval(StrEnum):
    MONTH = "month"
    YEAR = "year"

    @property
    def months(self) -> int:
        return 1 if self is BillingInterval.MONTH else 12


@dataclass(frozen=True)
class CustomerDetails:
    """What a customer registers with (Customer.register checks and normalises them)."""

    name: str
    email: str
    currency: str
    country: str
    region: str = ""
    tax_exempt: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The details' keywords, as register_customer takes them and the admin and API show them."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class PlanTerms:
    """What one version of a plan sells: define_plan gives version 1's, revise_plan the next one's.
    Tier and interval are not terms: they are the plan's identity, fixed when it is defined.
    Overage rates may be given as Money (minor digits at most 6); the plan reads them as unit rates."""

    name: str
    trial_days: int
    prices: list[Money]
    features: list[str] = field(default_factory=list)
    included_usage: dict[str, int] = field(default_factory=dict)
    overage_rates: dict[str, list[UnitRate | Money]] = field(default_factory=dict)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The terms' keywords, as the commands, the admin form and the API take them."""
        return tuple(f.name for f in fields(cls))

    def keywords(self) -> dict:
        """The terms as keywords (the PlanCreated/PlanUpdated payload says them so)."""
        return {name: getattr(self, name) for name in self.names()}


@dataclass(frozen=True, slots=True)
class SubscriptionPeriod:
    """[start, end) of one billing period.

    Periods follow the billing anchor (anniversary billing): period *n* ends
    ``anchor + (n+1) intervals``, counted from the anchor each time so a
    Jan 31 anchor gives Feb 28 (or 29), then Mar 31 — never drifting to the 28th.
    The rule itself is the shared kernel's (sharedkernel.periods), which Billing
    uses too for the period after a published one.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("Periods are bounded by timezone-aware times.")
        if self.end <= self.start:
            raise ValueError("A period ends after it starts.")

    @classmethod
    def nth(cls, anchor: datetime, interval: BillingInterval, index: int) -> SubscriptionPeriod:
        start, end = nth_period(anchor, interval.value, index)
        return cls(start=start, end=end)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def remaining(self, moment: datetime) -> timedelta:
        if moment <= self.start:
            return self.end - self.start
        return max(self.end - moment, timedelta(0))

    def remaining_fraction(self, moment: datetime) -> Decimal:
        """Share of the period left at ``moment``, exact to the second."""
        total = Decimal(int((self.end - self.start).total_seconds()))
        left = Decimal(int(self.remaining(moment).total_seconds()))
        return left / total

    @property
    def length(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class TrialDuration:
    days: int

    def __post_init__(self) -> None:
        if not 0 <= self.days <= 365:
            raise ValueError("A trial lasts between 0 and 365 days.")

    @property
    def offered(self) -> bool:
        return self.days > 0

    def ends_at(self, start: datetime) -> datetime:
        return start + timedelta(days=self.days)

    @staticmethod
    def days_left(trial_end: datetime, moment: datetime) -> int:
        """Whole days left, counting a started day (0 once the trial is over)."""
        seconds = (trial_end - moment).total_seconds()
        if seconds <= 0:
            return 0
        return int(-(-seconds // 86400))


#: The largest usage quantity anywhere: one record, or a plan's included quantity of a metric.
#: A batch of 1,000 records at the bound still sums below 2^63 (the counters' BIGINT), and
#: the bound is far above any real meter reading. docs/api-input.md states it.
MAX_QUANTITY = 10**15


@dataclass(frozen=True, slots=True)
class UsageQuota:
    """Included quantity of a metric per period, with the thresholds that are announced."""

    metric: str
    included: int
    thresholds: tuple[int, ...] = (80, 100)

    def __post_init__(self) -> None:
        if self.included < 0:
            raise ValueError("Included usage cannot be negative.")

    def overage(self, used: int) -> int:
        return max(0, used - self.included)

    def crossed(self, before: int, after: int) -> list[int]:
        """Threshold percentages crossed when usage goes from ``before`` to ``after``."""
        if self.included == 0:
            return []
        return [p for p in self.thresholds if before * 100 < p * self.included <= after * 100]

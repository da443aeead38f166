"""Usage events: a batch recorded, thresholds crossed, a period's final totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sharedkernel.events import Event, encode
from sharedkernel.values import UnitRate
from subscriptions.events.refs import PeriodRef


@dataclass(frozen=True)
class UsageTotal:
    subscription_id: str
    customer_id: str
    metric: str
    quantity: int  #: accepted in this batch
    period_start: datetime  #: the period the usage counts towards


@dataclass(frozen=True)
class UsageRecorded(Event):
    """A batch of usage records was accepted (one event per ingestion request; the
    records themselves are kept, deduplicated by idempotency key, as UsageRecord rows)."""

    event_type = "subscriptions.UsageRecorded"
    aggregate_type = "UsageBatch"
    aggregate_id_field = "batch_id"

    batch_id: str
    accepted: int
    duplicates: int
    totals: list[UsageTotal]

    def payload(self) -> dict:
        """What the generic encoder gives (a test holds the two equal), written out: a batch carries
        up to a thousand totals and walking each through ``encode`` was a tenth of an ingestion call."""
        iso: dict[datetime, str] = {}  # a batch's totals share a few period starts
        for t in self.totals:
            if t.period_start not in iso:
                iso[t.period_start] = encode(t.period_start)
        return {
            "batch_id": self.batch_id,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "totals": [
                {
                    "subscription_id": t.subscription_id,
                    "customer_id": t.customer_id,
                    "metric": t.metric,
                    "quantity": t.quantity,
                    "period_start": iso[t.period_start],
                }
                for t in self.totals
            ],
        }


@dataclass(frozen=True)
class UsageThresholdReached(Event):
    """Usage of a metric reached ``threshold_percent`` (80, then 100) of what the plan includes,
    once per period."""

    event_type = "subscriptions.UsageThresholdReached"
    aggregate_type = "UsageCounter"
    aggregate_id_field = "counter_id"

    counter_id: str
    subscription_id: str
    customer_id: str
    metric: str
    threshold_percent: int
    used: int
    included: int
    period_start: datetime


@dataclass(frozen=True)
class UsageQuotaExceeded(UsageThresholdReached):
    """Usage went over what the plan includes; the excess is billed as overage."""

    event_type = "subscriptions.UsageQuotaExceeded"


@dataclass(frozen=True)
class MetricUsage:
    metric: str
    used: int
    included: int
    overage: int  #: max(0, used − included)
    rate: UnitRate | None  #: price per unit over the included quantity, up to 6 decimals (None: not billed)


@dataclass(frozen=True)
class UsageCalculated(Event):
    """A period's usage is final (its grace window for late records has passed).
    Billing adds the overage to the invoice; ``final`` when the subscription ended with it."""

    event_type = "subscriptions.UsageCalculated"
    aggregate_type = "UsagePeriod"
    aggregate_id_field = "usage_period_id"

    usage_period_id: str
    subscription_id: str
    customer_id: str
    plan_name: str
    currency: str
    period: PeriodRef
    metrics: list[MetricUsage]
    final: bool

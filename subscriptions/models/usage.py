"""The usage aggregate: what a subscription may count, the running counters and their thresholds,
and the close of a period.

* :class:`MeteredSubscription` decides whether a record counts and towards which period (the open
  one, or the closed one within its grace window);
* :class:`UsageMeter` turns what a batch added to the counters into ``UsageRecorded`` and, for each
  counter that crossed 80 % / 100 % of its included quantity, ``UsageThresholdReached`` /
  ``UsageQuotaExceeded`` — once per period, because it compares the counter before and after;
* :meth:`UsagePeriod.calculate` gives Billing the final totals and overage (``UsageCalculated``).

The tables are written by :mod:`subscriptions.infrastructure.usage_repository` (the fast SQL).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import models

from sharedkernel.aggregates import RecordedEvent
from sharedkernel.events import Event
from sharedkernel.values import UnitRate
from subscriptions import events as ev
from subscriptions.models.statuses import SubscriptionStatus
from subscriptions.models.subscriptions import Subscription
from subscriptions.values import BillingInterval, SubscriptionPeriod

THRESHOLDS = (80, 100)
FUTURE_SKEW = timedelta(minutes=5)
#: Usage rows are not versioned aggregates: each event is the one version of its own fact.
FACT_VERSION = 1
BILLABLE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)


def grace() -> timedelta:
    return timedelta(seconds=getattr(settings, "USAGE_GRACE_SECONDS", 3600))


def recorded(event: Event, at: datetime, test_clock_id: str | None) -> RecordedEvent:
    """A usage fact as the event store appends it (type and id from the event class)."""
    return RecordedEvent(event, at, event.aggregate_type, event.aggregate_id, FACT_VERSION, test_clock_id)


@dataclass(frozen=True)
class UsageTerms:
    """What a plan version includes per period and charges per unit over it."""

    included: dict[str, int]
    rates: dict[tuple[str, str], UnitRate]  #: (currency, metric) → unit rate

    def rate(self, currency: str, metric: str) -> UnitRate | None:
        return self.rates.get((currency, metric))


class Refusal(NamedTuple):
    field: str
    code: str
    message: str


@dataclass
class MeteredSubscription:
    """What counting usage needs to know of a subscription."""

    customer_id: str
    status: str
    period_start: datetime
    period_end: datetime
    anchor: datetime
    index: int
    interval: str
    included: dict
    test_clock_id: str | None

    @property
    def previous_start(self) -> datetime | None:
        if self.index == 0:
            return None
        return SubscriptionPeriod.nth(self.anchor, BillingInterval(self.interval), self.index - 1).start

    def refuses(self, metric: str) -> Refusal | None:
        """Whether usage of ``metric`` is recorded at all: a billable subscription, a metered metric."""
        if self.status not in BILLABLE:
            return Refusal("subscription", "not_billable", f"The subscription is {self.status}; usage is not recorded.")
        if metric not in self.included:
            known = ", ".join(sorted(self.included)) or "none"
            return Refusal("metric", "unknown_metric", f"The plan does not meter {metric!r} (it meters: {known}).")
        return None

    def period_for(self, at: datetime, now: datetime) -> datetime | Refusal:
        """The start of the period usage at ``at`` counts towards: the open one, or the closed one
        while its grace window lasts."""
        if at > now + FUTURE_SKEW:
            return Refusal("timestamp", "in_future", "The timestamp is in the future.")
        if self.period_start <= at < self.period_end:
            return self.period_start
        previous = self.previous_start
        if previous is not None and previous <= at < self.period_start and now < self.period_start + grace():
            return previous  # late usage of the closed period, within its grace window
        return Refusal(
            "timestamp",
            "outside_period",
            f"The timestamp is outside the open period ({self.period_start:%Y-%m-%d %H:%M} – "
            f"{self.period_end:%Y-%m-%d %H:%M} UTC) and its grace window.",
        )


class UsageMeter:
    """The batch's counting: what was added per counter, and which thresholds that crossed."""

    def __init__(self, subs: dict[str, MeteredSubscription], now_of: dict[str | None, datetime]) -> None:
        self.subs, self.now_of = subs, now_of

    @staticmethod
    def crossed(before: int, used: int, included: int) -> list[int]:
        """The THRESHOLDS (percent of ``included``) a counter passed going from ``before`` to ``used``."""
        if included <= 0:
            return []
        return [percent for percent in THRESHOLDS if before < included * percent / 100 <= used]

    @staticmethod
    def exceeded(before: int, used: int, included: int) -> bool:
        """The counter went past its included quantity with this addition."""
        return included > 0 and before <= included < used

    def events(
        self, *, accepted: int, duplicates: int, sums: dict[tuple, int], after: dict[tuple, tuple[int, int]]
    ) -> list[RecordedEvent]:
        """UsageRecorded for the batch (``sums``: added per (subscription, metric, period start)), and a
        threshold event for each counter (``after``: its id and total after the addition) that crossed one."""
        if not sums:
            return []
        batch_id = str(uuid.uuid4())
        totals = [
            ev.UsageTotal(subscription_id=s, customer_id=self.subs[s].customer_id, metric=m, quantity=q, period_start=p)
            for (s, m, p), q in sorted(sums.items())
        ]
        events = [
            recorded(
                ev.UsageRecorded(batch_id=batch_id, accepted=accepted, duplicates=duplicates, totals=totals),
                max(self.now_of.values()),
                None,
            )
        ]
        for (sub_id, metric, start), (counter_id, used) in after.items():
            sub = self.subs[sub_id]
            included = int(sub.included.get(metric) or 0)
            before = used - sums[(sub_id, metric, start)]
            facts = dict(
                counter_id=str(counter_id),
                subscription_id=sub_id,
                customer_id=sub.customer_id,
                metric=metric,
                used=used,
                included=included,
                period_start=start,
            )
            at = self.now_of[sub.test_clock_id]
            for percent in self.crossed(before, used, included):
                events.append(
                    recorded(ev.UsageThresholdReached(**facts, threshold_percent=percent), at, sub.test_clock_id)
                )
            if self.exceeded(before, used, included):
                events.append(recorded(ev.UsageQuotaExceeded(**facts, threshold_percent=100), at, sub.test_clock_id))
        return events


class UsageRecord(models.Model):
    """One reported usage fact. Append-only; a repeated idempotency key is a duplicate."""

    id = models.BigAutoField(primary_key=True)
    subscription_id = models.UUIDField()
    metric = models.CharField(max_length=50)
    quantity = models.BigIntegerField()
    timestamp = models.DateTimeField()
    period_start = models.DateTimeField(help_text="The billing period the usage counts towards.")
    idempotency_key = models.CharField(max_length=100)
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription_id", "idempotency_key"], name="usage_key_once"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.metric} at {self.timestamp:%Y-%m-%d %H:%M}"


class UsageCounter(models.Model):
    """Running total of a metric in one period of a subscription (what the GET endpoint reads)."""

    id = models.BigAutoField(primary_key=True)
    subscription_id = models.UUIDField()
    metric = models.CharField(max_length=50)
    period_start = models.DateTimeField()
    used = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription_id", "metric", "period_start"], name="one_counter_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric}: {self.used}"


class UsagePeriod(models.Model):
    """A closed billing period whose usage becomes final once its grace window has passed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="usage_periods")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    final = models.BooleanField(default=False, help_text="The subscription ended with this period.")
    due_at = models.DateTimeField(db_index=True, help_text="Period end + the grace window for late usage.")
    calculated_at = models.DateTimeField(null=True, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "period_start"], name="one_close_per_period"),
        ]

    def __str__(self) -> str:
        return f"Usage of {self.period_start:%Y-%m-%d} – {self.period_end:%Y-%m-%d}"

    def calculate(self, *, used: dict[str, int], terms: UsageTerms, now: datetime) -> RecordedEvent:
        """UsageCalculated: the period's final totals and overage on the terms it is billed on."""
        sub = self.subscription
        included = terms.included
        metrics = [
            ev.MetricUsage(
                metric=m,
                used=int(used.get(m, 0)),
                included=int(included.get(m, 0)),
                overage=max(0, int(used.get(m, 0)) - int(included.get(m, 0))),
                rate=terms.rate(sub.currency, m),
            )
            for m in sorted(set(included) | set(used))
        ]
        event = ev.UsageCalculated(
            usage_period_id=str(self.pk),
            subscription_id=str(sub.pk),
            customer_id=str(sub.customer_id),
            plan_name=sub.plan.name,
            currency=sub.currency,
            period=ev.PeriodRef(self.period_start, self.period_end),
            metrics=metrics,
            final=self.final,
        )
        self.calculated_at = now
        return recorded(event, max(now, self.due_at), self.clock_id)

    @property
    def clock_id(self) -> str | None:
        return str(self.test_clock_id) if self.test_clock_id else None

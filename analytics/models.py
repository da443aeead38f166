"""Analytics read models. Built only from events; nothing here writes back anywhere.

Every table can be emptied and rebuilt from the event store
(``manage.py replay_events --context analytics --reset``).
"""

from __future__ import annotations

from django.db import models

from analytics.vocabulary import Interval
from sharedkernel.projection import applied_position_field
from sharedkernel.values import Money, money_from_minor


def monthly(price: Money, interval: str) -> Money:
    """MRR of a price: annual plans ÷ 12, rounded half-up to the minor unit."""
    return price if interval == Interval.MONTH else Money.rounded(price.amount / 12, price.currency)


class SubscriptionView(models.Model):
    """One row per subscription: what it is worth per month and how likely it is to leave."""

    subscription_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField(db_index=True)
    plan_id = models.UUIDField()
    plan_name = models.CharField(max_length=100)
    tier = models.CharField(max_length=20)
    interval = models.CharField(max_length=10)
    currency = models.CharField(max_length=3)
    price_minor = models.BigIntegerField(default=0, help_text="Per billing period")
    status = models.CharField(max_length=20, db_index=True)
    started_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    percent_off = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    amount_off_minor = models.BigIntegerField(null=True, blank=True)
    discount_periods_left = models.IntegerField(null=True, blank=True)
    mrr_minor = models.BigIntegerField(default=0, help_text="Monthly recurring revenue it contributes now")
    ever_contributed = models.BooleanField(default=False)
    failed_payments = models.PositiveIntegerField(default=0)
    dunning_level = models.PositiveSmallIntegerField(default=0)
    downgrades = models.PositiveSmallIntegerField(default=0)
    usage_this_period = models.BigIntegerField(default=0)
    usage_last_period = models.BigIntegerField(null=True, blank=True)
    #: The subscription's aggregate version last seen (for staff; it does not order events).
    last_version = models.PositiveIntegerField(default=0)
    #: Position of the last of the subscription's own events applied here (sharedkernel.projection).
    last_position = applied_position_field()

    class Meta:
        ordering = ["-mrr_minor"]

    def __str__(self) -> str:
        return f"{self.plan_name} ({self.status})"

    @property
    def monthly_price(self) -> Money:
        return monthly(Money.from_minor(self.price_minor, self.currency), self.interval)

    mrr = money_from_minor("mrr_minor")

    def risk_factors(self) -> list[tuple[str, int]]:
        """Why this subscription may churn, with the points each reason adds (explained on the page)."""
        factors = []
        if self.failed_payments:
            factors.append((f"{self.failed_payments} failed payment(s)", min(45, 15 * self.failed_payments)))
        if self.dunning_level:
            factors.append((f"dunning step {self.dunning_level}", 15 * self.dunning_level))
        if self.downgrades:
            factors.append((f"{self.downgrades} downgrade(s)", min(20, 10 * self.downgrades)))
        if self.usage_last_period and self.usage_this_period < self.usage_last_period / 2:
            factors.append(("usage fell by more than half", 15))
        return factors

    @property
    def churn_risk(self) -> int:
        return min(100, sum(points for _, points in self.risk_factors()))


class MrrMovement(models.Model):
    """A change in a subscription's MRR contribution, classified."""

    class Kind(models.TextChoices):
        NEW = "new"
        EXPANSION = "expansion"
        CONTRACTION = "contraction"
        CHURNED = "churned"
        REACTIVATION = "reactivation"
        PRICE_CHANGE = "price_change", "Price change"  #: a price migration moved the subscription

    id = models.BigAutoField(primary_key=True)
    day = models.DateField(db_index=True)
    currency = models.CharField(max_length=3)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount_minor = models.BigIntegerField(help_text="Signed change of MRR")
    subscription_id = models.UUIDField()
    event_position = models.BigIntegerField()

    class Meta:
        ordering = ["day", "id"]

    def __str__(self) -> str:
        return f"{self.day} {self.kind} {self.amount_minor} ({self.currency})"


class MrrSnapshot(models.Model):
    """MRR per currency at the end of a day on which it changed (days in between carry it forward)."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    mrr_minor = models.BigIntegerField()

    class Meta:
        ordering = ["day"]
        constraints = [models.UniqueConstraint(fields=["day", "currency"], name="one_snapshot_per_day")]

    def __str__(self) -> str:
        return f"{self.day}: {self.mrr_minor} ({self.currency})"


class RevenueEntry(models.Model):
    """Money in (payments) and out (refunds), by day, plan and currency."""

    id = models.BigAutoField(primary_key=True)
    day = models.DateField(db_index=True)
    currency = models.CharField(max_length=3)
    plan_name = models.CharField(max_length=100)
    amount_minor = models.BigIntegerField()
    kind = models.CharField(max_length=10)  # payment | refund
    event_id = models.UUIDField(unique=True)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day} {self.kind} {self.amount_minor} ({self.currency})"


class Report(models.Model):
    """The monthly report (beat), stored for download from the admin."""

    month = models.DateField(unique=True)
    generated_at = models.DateTimeField()
    csv = models.TextField()

    class Meta:
        ordering = ["-month"]

    def __str__(self) -> str:
        return f"Report {self.month:%B %Y}"


class CustomerName(models.Model):
    """Who a customer is, for staff tables (the at-risk list names the customer, not an id);
    projected from CustomerRegistered."""

    customer_id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200)
    email = models.CharField(max_length=254)

    def __str__(self) -> str:
        return self.name

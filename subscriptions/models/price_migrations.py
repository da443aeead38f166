"""The PriceMigration aggregate: staff move a plan's subscriptions to another version of it.

A migration is drafted (which subscriptions, the target version, from when), previewed, started,
paused, resumed or cancelled. A beat job (jobs.schedule_price_changes) then walks the selected
subscriptions in id order, a batch per transaction: each gets ``Subscription.schedule_price_change``
(PriceChangeScheduled: the notice) or is left out with a reason. The batch, the subscriptions'
changes, one PriceMigrationItem row per subscription (unique per migration) and the migration's
cursor commit together, so a crash repeats nothing and a second beat finds the rows taken.

When: the first renewal on or after the later of ``effective_from`` and — for a rise — the notice
period (PRICE_CHANGE_NOTICE_DAYS, never shorter); a cut needs no notice and applies at the first
renewal on or after ``effective_from`` (the next one when that date has passed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import models

from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import InvalidInput, InvalidTransition
from sharedkernel.values import Money
from subscriptions import events as ev
from subscriptions.models.plans import Plan, PlanVersion
from subscriptions.models.statuses import SubscriptionStatus, SuspensionReason
from subscriptions.models.subscriptions import Subscription
from subscriptions.values import PlanTier


class MigrationStatus(models.TextChoices):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"


class LeftOut(models.TextChoices):
    """Why a selected subscription is reported, not moved."""

    DUNNING = "dunning", "In dunning (an invoice is being chased, or suspended for non-payment)"
    PAUSED = "paused", "Paused by staff"
    SUSPENDED = "suspended", "Suspended (no payment method)"
    PENDING_PAYMENT = "pending_payment", "First payment pending"
    APPROVAL_ONLY_PLAN = "approval_only_plan", "Approval-only plan (changes need staff)"
    CANCELLING = "cancelling", "Cancels at period end"
    ALREADY_SCHEDULED = "change_already_scheduled", "Another price change is scheduled"
    ON_TARGET = "on_target_version", "Already on the target version"
    CURRENCY = "currency_not_offered", "The target version has no price in its currency"


@dataclass(frozen=True)
class PriceChangeDecision:
    """What a migration does with one subscription: leave it out (``left_out``) or move it."""

    left_out: str | None
    old_price: Money
    new_price: Money | None = None
    effective_at: datetime | None = None

    #: Why a subscription that is not left out still is not moved: no renewal of it is to come.
    NO_RENEWAL = "no_renewal"

    @property
    def moves(self) -> bool:
        return not self.left_out and self.effective_at is not None

    @property
    def reason(self) -> str:
        """Why it is not moved (a LeftOut value, or NO_RENEWAL)."""
        return self.left_out or self.NO_RENEWAL

    @property
    def monthly_change(self) -> Money:
        zero = Money.from_minor(0, self.old_price.currency)
        return self.new_price - self.old_price if self.new_price is not None else zero


class PriceMigration(AggregateRoot):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="price_migrations")
    to_version = models.PositiveIntegerField()
    effective_from = models.DateTimeField()
    from_versions = models.JSONField(default=list, blank=True, help_text="Empty: every older version.")
    currencies = models.JSONField(default=list, blank=True, help_text="Empty: every currency.")
    subscription_ids = models.JSONField(default=list, blank=True, help_text="Empty: every matching subscription.")
    created_before = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=MigrationStatus.choices, default=MigrationStatus.DRAFT)
    #: The last subscription id a committed batch handled (batches walk ids in order).
    cursor = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    test_clock_attribute = None

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.plan.name} → v{self.to_version} ({self.status})"

    # -- behaviour -------------------------------------------------------------------
    @classmethod
    def draft(
        cls,
        *,
        plan: Plan,
        target: PlanVersion | None,
        effective_from: datetime,
        from_versions: list[int],
        currencies: list[str],
        subscription_ids: list[str],
        created_before: datetime | None = None,
        at: datetime,
    ) -> PriceMigration:
        """Refuses a version the plan does not have, selecting the target version itself,
        and currencies the target version is not sold in."""
        if target is None:
            raise InvalidInput("The plan has no such version.", details={"to_version": "does not exist"})
        from_versions = sorted({int(v) for v in from_versions})
        if target.version in from_versions or any(v < 1 or v > plan.current_version for v in from_versions):
            raise InvalidInput(
                "from_versions are other existing versions of the plan.", details={"from_versions": "invalid"}
            )
        currencies = sorted({c.upper() for c in currencies})
        sold = {p.currency for p in target.money_prices}
        if not set(currencies) <= sold:
            raise InvalidInput(
                f"Version {target.version} is not sold in {sorted(set(currencies) - sold)}.",
                details={"currencies": "not offered by the target version"},
            )
        migration = cls(
            id=uuid.uuid4(),
            plan=plan,
            to_version=target.version,
            effective_from=effective_from,
            from_versions=from_versions,
            currencies=currencies,
            subscription_ids=sorted({str(uuid.UUID(str(s))) for s in subscription_ids}),
            created_before=created_before,
            status=MigrationStatus.DRAFT,
            created_at=at,
        )
        migration.record(
            ev.PriceMigrationDrafted(
                migration_id=str(migration.id),
                plan_id=str(plan.id),
                to_version=target.version,
                effective_from=effective_from,
                from_versions=from_versions,
                currencies=currencies,
                subscription_ids=migration.subscription_ids,
                created_before=created_before,
            ),
            at=at,
        )
        return migration

    def _move(self, allowed: tuple[str, ...], to: str, event_class, *, at: datetime, verb: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"A {self.status} migration cannot be {verb}.")
        self.status = to
        self.record(event_class(migration_id=str(self.id)), at=at)

    def start(self, *, at: datetime) -> None:
        self._move((MigrationStatus.DRAFT,), MigrationStatus.RUNNING, ev.PriceMigrationStarted, at=at, verb="started")
        self.started_at = at

    def pause(self, *, at: datetime) -> None:
        self._move((MigrationStatus.RUNNING,), MigrationStatus.PAUSED, ev.PriceMigrationPaused, at=at, verb="paused")

    def resume(self, *, at: datetime) -> None:
        self._move((MigrationStatus.PAUSED,), MigrationStatus.RUNNING, ev.PriceMigrationResumed, at=at, verb="resumed")

    def cancel(self, *, at: datetime) -> None:
        self._move(
            (MigrationStatus.DRAFT, MigrationStatus.RUNNING, MigrationStatus.PAUSED, MigrationStatus.DONE),
            MigrationStatus.CANCELLED,
            ev.PriceMigrationCancelled,
            at=at,
            verb="cancelled",
        )
        self.finished_at = at

    def handled_up_to(self, cursor) -> None:
        if self.status != MigrationStatus.RUNNING:
            raise InvalidTransition("Only a running migration schedules price changes.")
        self.cursor = cursor

    def complete(self, *, scheduled: int, left_out: int, at: datetime) -> None:
        if self.status != MigrationStatus.RUNNING:
            raise InvalidTransition("Only a running migration completes.")
        self.status, self.finished_at = MigrationStatus.DONE, at
        self.record(
            ev.PriceMigrationCompleted(migration_id=str(self.id), scheduled=scheduled, left_out=left_out), at=at
        )

    # -- deciding, one subscription at a time ----------------------------------------
    def decide(self, sub: Subscription, *, target: PlanVersion, now: datetime, notice_days: int) -> PriceChangeDecision:
        """Leave out (with the reason) or move, when and at which price."""
        old = sub.price
        reason = self._left_out(sub, target)
        if reason:
            return PriceChangeDecision(reason, old)
        new = target.price_in(sub.currency)
        earliest = max(self.effective_from, now)
        if new > old:  # a rise: never before the notice period has run
            earliest = max(earliest, now + timedelta(days=notice_days))
        return PriceChangeDecision(None, old, new, sub.first_renewal_on_or_after(earliest))

    def _left_out(self, sub: Subscription, target: PlanVersion) -> str | None:
        if sub.dunning_since is not None:  # still active, but Billing is chasing an unpaid invoice
            return LeftOut.DUNNING
        if sub.status == SubscriptionStatus.SUSPENDED:
            return {
                SuspensionReason.NON_PAYMENT: LeftOut.DUNNING,
                SuspensionReason.STAFF: LeftOut.PAUSED,
            }.get(sub.suspension_reason, LeftOut.SUSPENDED)
        if sub.status == SubscriptionStatus.PENDING_PAYMENT:
            return LeftOut.PENDING_PAYMENT
        if sub.plan.plan_tier == PlanTier.ENTERPRISE:
            return LeftOut.APPROVAL_ONLY_PLAN
        if sub.cancel_at_period_end:
            return LeftOut.CANCELLING
        if sub.scheduled_migration_id is not None:
            return LeftOut.ALREADY_SCHEDULED
        if sub.plan_version == target.version:
            return LeftOut.ON_TARGET
        if target.price_in(sub.currency) is None:
            return LeftOut.CURRENCY
        return None


class ItemOutcome(models.TextChoices):
    SCHEDULED = "scheduled"
    LEFT_OUT = "left_out"
    MOVED = "moved"
    CANCELLED = "cancelled"


class PriceMigrationItem(models.Model):
    """What a migration did with one subscription. Unique per (migration, subscription): the guard that
    a crash, a retried batch or a second beat never schedules (or notifies) anyone twice."""

    id = models.BigAutoField(primary_key=True)
    migration = models.ForeignKey(PriceMigration, on_delete=models.CASCADE, related_name="items")
    subscription_id = models.UUIDField()
    outcome = models.CharField(max_length=10, choices=ItemOutcome.choices)
    reason = models.CharField(max_length=40, blank=True)
    currency = models.CharField(max_length=3)
    old_price_minor = models.BigIntegerField()
    new_price_minor = models.BigIntegerField(null=True, blank=True)
    effective_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["migration", "subscription_id"], name="one_item_per_migrated_subscription")
        ]
        indexes = [models.Index(fields=["migration", "outcome"], name="migration_item_outcome")]

    def __str__(self) -> str:
        return f"{self.subscription_id}: {self.outcome}"

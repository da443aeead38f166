"""Rules of the Subscription aggregate for changing what it is billed: the plan (ChangePlan under
PlanChangePolicy, with staff approval for some) and the price (a price migration's PriceChangeScheduled,
applied as PriceChanged at the first renewal on/after its date). Mixed into
:class:`subscriptions.models.subscriptions.Subscription`; they use its fields and helpers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sharedkernel.errors import InvalidInput, InvalidTransition
from sharedkernel.values import Money
from subscriptions import events as ev
from subscriptions.models.statuses import PriceChangeDropped, SubscriptionStatus
from subscriptions.rules import (
    NoPendingPlanChange,
    PlanChangeDecision,
    PlanChangePolicy,
    PlanOption,
    PlanUnavailable,
)
from subscriptions.values import BillingInterval

if TYPE_CHECKING:
    from subscriptions.models.plans import Plan


class PlanChanges:
    """ChangePlan, its decision, and the approval of a change that waits for staff."""

    def change_plan(
        self, *, target: Plan, at: datetime, policy: PlanChangePolicy, approved_by_staff: bool = False
    ) -> bool:
        """ChangePlan under PlanChangePolicy. Returns False when the change waits for
        staff approval (PlanChangeRequested) and True when it happened (PlanChanged)."""
        decision = self.decide_plan_change(target=target, policy=policy, approved_by_staff=approved_by_staff)
        wanted = target.option(self.currency)
        if decision.needs_approval:
            self.pending_plan = target
            self.record(
                ev.PlanChangeRequested(**self._common(), requested_plan=target.ref(), requested_price=wanted.price),
                at=at,
            )
            return False
        self._drop_price_change(reason=PriceChangeDropped.PLAN_CHANGED, at=at)
        old_plan, old_price, old_period = self.plan.ref(self.plan_version), self.price, self._period_ref()
        interval_changes = target.interval != self.interval
        self.plan, self.price_minor, self.interval = target, wanted.price.minor_units, target.interval
        self.plan_version = target.current_version
        self.pending_plan = None
        if interval_changes and not self.trialing:
            self._move_to_period(at, 0)  # a new interval starts a new period now (credited by Billing)
        self.record(
            ev.PlanChanged(
                **self._common(),
                old_plan=old_plan,
                old_price=old_price,
                new_price=wanted.price,
                changed_at=at,
                period=old_period,
                new_period=self._period_ref(),
                direction=decision.direction.value,
                in_trial=self.trialing,
            ),
            at=at,
        )
        return True

    def decide_plan_change(
        self, *, target: Plan, policy: PlanChangePolicy, approved_by_staff: bool = False
    ) -> PlanChangeDecision:
        """What :meth:`change_plan` would do, without doing it: raises the DomainError that would
        refuse it, or says whether it waits for approval (the plan-change page asks this first)."""
        if self.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            raise InvalidTransition(f"Only an active or trialing subscription can change plans (it is {self.status}).")
        if target.archived:
            raise PlanUnavailable(f"The {target.name} plan is no longer offered.")
        current = PlanOption(str(self.plan_id), self.plan.plan_tier, BillingInterval(self.interval), self.price)
        return policy.decide(
            current=current,
            target=target.option(self.currency),
            trialing=self.trialing,
            approved_by_staff=approved_by_staff,
        )

    def approve_plan_change(self, *, at: datetime, policy: PlanChangePolicy) -> None:
        if self.pending_plan is None:
            raise NoPendingPlanChange("There is no plan change waiting for approval.")
        self.change_plan(target=self.pending_plan, at=at, policy=policy, approved_by_staff=True)

    def decline_plan_change(self, *, at: datetime) -> None:
        if self.pending_plan is None:
            raise NoPendingPlanChange("There is no plan change waiting for approval.")
        requested = self.pending_plan.ref()
        self.pending_plan = None
        self.record(ev.PlanChangeDeclined(**self._common(), requested_plan=requested), at=at)


class PriceChanges:
    """A price migration's change of version and price, scheduled ahead and applied at a renewal."""

    def schedule_price_change(
        self, *, migration_id: str, to_version: int, new_price: Money, effective_at: datetime, at: datetime
    ) -> None:
        """PriceChangeScheduled: from the first renewal on/after ``effective_at`` it is billed
        ``new_price`` on ``to_version``. Only a live, paying (or trialing) subscription that is not
        cancelling, has no other change scheduled and is not on that version already; the date is a
        renewal (a period boundary) not in the past."""
        if self.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            raise InvalidTransition(
                f"Only an active or trialing subscription gets a price change (it is {self.status})."
            )
        if self.cancel_at_period_end:
            raise InvalidTransition("The subscription is cancelling; it keeps its price to the end.")
        if self.scheduled_migration_id is not None:
            raise InvalidTransition("A price change is already scheduled for this subscription.")
        if to_version == self.plan_version:
            raise InvalidTransition(f"The subscription is on version {to_version} already.")
        if new_price.currency != self.currency:
            raise InvalidInput("The new price is in another currency.", details={"currency": new_price.currency})
        if effective_at < at or self.first_renewal_on_or_after(effective_at) != effective_at:
            raise InvalidInput("A price change takes effect at a renewal to come.", details={"effective_at": "invalid"})
        self.scheduled_migration_id = uuid.UUID(str(migration_id))
        self.scheduled_version, self.scheduled_price_minor = to_version, new_price.minor_units
        self.scheduled_effective_at = effective_at
        self.record(
            ev.PriceChangeScheduled(
                **self._common(),
                migration_id=str(migration_id),
                from_version=self.plan_version,
                to_version=to_version,
                old_price=self.price,
                new_price=new_price,
                effective_at=effective_at,
            ),
            at=at,
        )

    def cancel_price_change(self, *, reason: str, at: datetime) -> None:
        if self.scheduled_migration_id is None:
            raise InvalidTransition("No price change is scheduled for this subscription.")
        self._drop_price_change(reason=reason, at=at)

    def _drop_price_change(self, *, reason: str, at: datetime) -> None:
        if self.scheduled_migration_id is None:
            return
        migration_id = str(self.scheduled_migration_id)
        self._clear_price_change()
        self.record(ev.PriceChangeCancelled(**self._common(), migration_id=migration_id, reason=reason), at=at)

    def _clear_price_change(self) -> None:
        self.scheduled_migration_id = self.scheduled_version = None
        self.scheduled_price_minor = self.scheduled_effective_at = None

    def _apply_due_price_change(self, *, boundary: datetime) -> None:
        """At a renewal on/after the scheduled date: PriceChanged, and the new period is billed the new price."""
        if self.scheduled_migration_id is None or boundary < self.scheduled_effective_at:
            return
        migration_id, effective_at = str(self.scheduled_migration_id), self.scheduled_effective_at
        from_version, old_price = self.plan_version, self.price
        self.plan_version, self.price_minor = self.scheduled_version, self.scheduled_price_minor
        self._clear_price_change()
        self.record(
            ev.PriceChanged(
                **self._common(),
                migration_id=migration_id,
                from_version=from_version,
                to_version=self.plan_version,
                old_price=old_price,
                new_price=self.price,
                effective_at=effective_at,
            ),
            at=boundary,
        )

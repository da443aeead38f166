"""The Subscription aggregate: start, trial, lifecycle and renewal.

Plan changes and price changes (a price migration's notice and its application at a renewal) are
rules of the same aggregate, kept in :mod:`subscriptions.models.changes` so each reads on its own.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import models

from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import InvalidTransition
from sharedkernel.values import money_from_minor
from subscriptions import events as ev
from subscriptions.models.changes import PlanChanges, PriceChanges
from subscriptions.models.customers import Customer
from subscriptions.models.plans import Plan
from subscriptions.models.statuses import (
    ActivationReason,
    PriceChangeDropped,
    ResumedFrom,
    ResumeInitiator,
    SubscriptionStatus,
    SuspensionReason,
)
from subscriptions.rules import AlreadySubscribed, PlanUnavailable, TrialNotAvailable
from subscriptions.values import BillingInterval, SubscriptionPeriod, TrialDuration


class Subscription(PlanChanges, PriceChanges, AggregateRoot):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    currency = models.CharField(max_length=3)
    price_minor = models.BigIntegerField(help_text="Price per period the customer bought, minor units.")
    interval = models.CharField(max_length=5, choices=[(i.value, i.value) for i in BillingInterval])
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices, db_index=True)
    billing_anchor = models.DateTimeField(help_text="Periods are counted from here (anniversary billing).")
    period_index = models.PositiveIntegerField(default=0)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField(db_index=True)
    trial_start = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    trial_reminder_sent = models.BooleanField(default=False)
    cancel_at_period_end = models.BooleanField(default=False)
    cancellation_reason = models.CharField(max_length=200, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspension_reason = models.CharField(max_length=20, choices=SuspensionReason.choices, blank=True)
    pending_plan = models.ForeignKey(Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    #: The plan version it is billed on (its price is ``price_minor``).
    plan_version = models.PositiveIntegerField(default=1)
    #: A price change a migration scheduled: from the first renewal on/after ``scheduled_effective_at``.
    scheduled_migration_id = models.UUIDField(null=True, blank=True, db_index=True)
    scheduled_version = models.PositiveIntegerField(null=True, blank=True)
    scheduled_price_minor = models.BigIntegerField(null=True, blank=True)
    scheduled_effective_at = models.DateTimeField(null=True, blank=True)
    #: Since when Billing is dunning the customer for one of its invoices (billing.DunningStarted;
    #: cleared by a successful payment). A price migration reports such a subscription, never moves it.
    dunning_since = models.DateTimeField(null=True, blank=True, editable=False)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "current_period_end", "id"], name="sub_due_in_order")]

    def __str__(self) -> str:
        return f"{self.customer.name} · {self.plan.name} ({self.status})"

    # -- reading -------------------------------------------------------------------
    price = money_from_minor("price_minor")

    @property
    def period(self) -> SubscriptionPeriod:
        return SubscriptionPeriod(self.current_period_start, self.current_period_end)

    scheduled_price = money_from_minor("scheduled_price_minor", optional=True)

    def renewal_boundaries(self, count: int = 60):
        """The moments its next periods start (the trial's end first while trialing)."""
        interval = BillingInterval(self.interval)
        if self.status == SubscriptionStatus.TRIALING:
            yield self.trial_end
            for k in range(1, count):
                yield SubscriptionPeriod.nth(self.trial_end, interval, k).start
            return
        for k in range(1, count + 1):
            yield SubscriptionPeriod.nth(self.billing_anchor, interval, self.period_index + k).start

    def first_renewal_on_or_after(self, moment: datetime) -> datetime | None:
        return next((b for b in self.renewal_boundaries() if b >= moment), None)

    @property
    def trialing(self) -> bool:
        return self.status == SubscriptionStatus.TRIALING

    def _period_ref(self) -> ev.PeriodRef:
        return ev.PeriodRef(start=self.current_period_start, end=self.current_period_end, anchor=self.billing_anchor)

    def _common(self) -> dict:
        return dict(
            subscription_id=str(self.id),
            customer_id=str(self.customer_id),
            plan=self.plan.ref(self.plan_version),
            status=self.status,
        )

    def _move_to_period(self, anchor: datetime, index: int) -> None:
        period = SubscriptionPeriod.nth(anchor, BillingInterval(self.interval), index)
        self.billing_anchor, self.period_index = anchor, index
        self.current_period_start, self.current_period_end = period.start, period.end

    # -- start -----------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        *,
        customer: Customer,
        plan: Plan,
        currency: str,
        trial: bool,
        at: datetime,
        trial_used_before: bool = False,
        live_plan_ids: frozenset[str] = frozenset(),
    ) -> Subscription:
        """CreateSubscription + SelectPlan (+ StartTrial).

        Refuses an archived plan, a currency the plan is not sold in, a second
        live subscription to the same plan, and a trial the plan does not offer
        or the customer already had.
        """
        if plan.archived:
            raise PlanUnavailable(f"The {plan.name} plan is no longer offered.")
        if str(plan.id) in live_plan_ids:
            raise AlreadySubscribed(f"{customer.name} already has a live subscription to {plan.name}.")
        price = plan.option(currency).price
        duration = TrialDuration(plan.trial_days)
        if trial and not duration.offered:
            raise TrialNotAvailable(f"The {plan.name} plan has no free trial.")
        if trial and trial_used_before:
            raise TrialNotAvailable("A free trial is available once per customer.")
        sub = cls(
            id=uuid.uuid4(),
            customer=customer,
            plan=plan,
            currency=price.currency,
            price_minor=price.minor_units,
            interval=plan.interval,
            plan_version=plan.current_version,
            test_clock_id=customer.test_clock_id,
            created_at=at,
        )
        if trial:
            trial_end = duration.ends_at(at)
            sub.status = SubscriptionStatus.TRIALING
            sub.trial_start, sub.trial_end = at, trial_end
            sub.billing_anchor, sub.period_index = trial_end, 0
            sub.current_period_start, sub.current_period_end = at, trial_end
        else:
            sub.status = SubscriptionStatus.PENDING_PAYMENT
            sub._move_to_period(at, 0)
        common = sub._common()
        sub.record(
            ev.SubscriptionCreated(
                **common, price=price, period=sub._period_ref(), trial=trial, trial_end=sub.trial_end
            ),
            at=at,
        )
        sub.record(ev.PlanSelected(**common, price=price), at=at)
        if trial:
            sub.record(
                ev.TrialStarted(**common, trial_start=at, trial_end=sub.trial_end, trial_days=duration.days), at=at
            )
        return sub

    def note_dunning(self, *, since: datetime | None) -> None:
        """Billing told us it is dunning the customer for this subscription (``since``), or that a
        payment settled it (None). No event: it is Billing's fact, kept here for our own decisions."""
        self.dunning_since = since

    # -- trial -------------------------------------------------------------------------
    def remind_trial_ending(self, *, at: datetime, days_before: int, has_payment_method: bool) -> None:
        if self.status != SubscriptionStatus.TRIALING:
            raise InvalidTransition("Only a trialing subscription gets a trial-ending reminder.")
        if self.trial_reminder_sent:
            raise InvalidTransition("The trial-ending reminder was already triggered.")
        if at < self.trial_end - timedelta(days=days_before):
            raise InvalidTransition("It is too early for the trial-ending reminder.")
        self.trial_reminder_sent = True
        self.record(
            ev.TrialEndingSoon(
                **self._common(),
                trial_end=self.trial_end,
                days_left=TrialDuration.days_left(self.trial_end, at),
                has_payment_method=has_payment_method,
            ),
            at=at,
        )

    def expire_trial(self, *, at: datetime, has_payment_method: bool) -> None:
        """TrialExpired, then: cancelled if a cancellation was scheduled, active
        (first period starts at trial end) if a payment method is on file, else suspended."""
        if self.status != SubscriptionStatus.TRIALING:
            raise InvalidTransition("Only a trialing subscription can have its trial expire.")
        if at < self.trial_end:
            raise InvalidTransition("The trial has not ended yet.")
        ended = self.trial_end
        if self.cancel_at_period_end:
            self.record(ev.TrialExpired(**self._common(), trial_end=ended, converted=False), at=ended)
            self._end(at=ended, reason=self.cancellation_reason, at_period_end=True)
            return
        if has_payment_method:
            self.status = SubscriptionStatus.ACTIVE
            self.activated_at = ended
            self._move_to_period(ended, 0)
            self.record(ev.TrialExpired(**self._common(), trial_end=ended, converted=True), at=ended)
            self._apply_due_price_change(boundary=ended)
            self._record_activated(at=ended, reason=ActivationReason.TRIAL_CONVERTED)
            return
        self.status = SubscriptionStatus.SUSPENDED
        self.suspended_at, self.suspension_reason = ended, SuspensionReason.NO_PAYMENT_METHOD
        common = self._common()
        self.record(ev.TrialExpired(**common, trial_end=ended, converted=False), at=ended)
        self.record(
            ev.SubscriptionSuspended(**common, reason=SuspensionReason.NO_PAYMENT_METHOD, suspended_at=ended), at=ended
        )

    # -- lifecycle ---------------------------------------------------------------------
    def activate(self, *, at: datetime) -> None:
        """The first invoice was paid: pending_payment → active."""
        if self.status != SubscriptionStatus.PENDING_PAYMENT:
            raise InvalidTransition(f"Only a subscription pending payment can be activated (it is {self.status}).")
        self.status = SubscriptionStatus.ACTIVE
        self.activated_at = at
        self._record_activated(at=at, reason=ActivationReason.FIRST_PAYMENT)

    def _record_activated(self, *, at: datetime, reason: ActivationReason) -> None:
        """SubscriptionActivated: live and billable from the current period's start."""
        self.record(
            ev.SubscriptionActivated(
                **self._common(), price=self.price, period=self._period_ref(), activated_at=at, reason=reason
            ),
            at=at,
        )

    def suspend(self, *, at: datetime, reason: str) -> None:
        if self.status != SubscriptionStatus.ACTIVE:
            raise InvalidTransition(f"Only an active subscription can be suspended (it is {self.status}).")
        self.status = SubscriptionStatus.SUSPENDED
        self.suspended_at, self.suspension_reason = at, SuspensionReason(reason)
        self.record(ev.SubscriptionSuspended(**self._common(), reason=reason, suspended_at=at), at=at)

    def resume(self, *, at: datetime, initiator: str = ResumeInitiator.CUSTOMER) -> None:
        """Back to active: from a suspension, or by withdrawing a scheduled cancellation.

        A customer cannot lift a suspension for non-payment themselves (paying
        lifts it); a new period starts when the old one has run out meanwhile
        or was never billed (trial ended without a payment method)."""
        if self.status == SubscriptionStatus.SUSPENDED:
            if initiator == ResumeInitiator.CUSTOMER and self.suspension_reason != SuspensionReason.STAFF:
                raise InvalidTransition(
                    "This subscription is suspended for payment; paying the open invoice or adding a card resumes it."
                )
            restart = at >= self.current_period_end or self.suspension_reason == SuspensionReason.NO_PAYMENT_METHOD
            if restart:
                self._move_to_period(at, 0)
            self.status = SubscriptionStatus.ACTIVE
            self.suspended_at, self.suspension_reason = None, ""
            self.activated_at = self.activated_at or at
            resumed_from = ResumedFrom.SUSPENDED
        elif self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING) and self.cancel_at_period_end:
            self.cancel_at_period_end, self.cancellation_reason = False, ""
            restart, resumed_from = False, ResumedFrom.SCHEDULED_CANCELLATION
        else:
            raise InvalidTransition(
                f"Only a suspended subscription or one scheduled to cancel can be resumed (it is {self.status})."
            )
        self.record(
            ev.SubscriptionResumed(
                **self._common(),
                price=self.price,
                resumed_from=resumed_from,
                resumed_at=at,
                period=self._period_ref(),
                period_restarted=restart,
            ),
            at=at,
        )

    def cancel(self, *, at: datetime, reason: str = "", at_period_end: bool = False) -> None:
        """Cancel now, or at the end of the current period (or trial).

        A subscription that is not yet paid or is suspended ends at once."""
        if self.status == SubscriptionStatus.CANCELLED:
            raise InvalidTransition("The subscription is already cancelled.")
        reason = (reason or "").strip()[:200] or "requested"
        self._drop_price_change(reason=PriceChangeDropped.CANCELLED, at=at)  # who cancels before the date never pays it
        if at_period_end and self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            if self.cancel_at_period_end:
                raise InvalidTransition("The subscription is already scheduled to cancel at the end of the period.")
            self.cancel_at_period_end, self.cancellation_reason = True, reason
            self.record(
                ev.SubscriptionCancellationScheduled(
                    **self._common(), cancel_at=self.current_period_end, reason=reason
                ),
                at=at,
            )
            return
        self._end(at=at, reason=reason, at_period_end=False)

    def _end(self, *, at: datetime, reason: str, at_period_end: bool) -> None:
        self._drop_price_change(reason=PriceChangeDropped.CANCELLED, at=at)
        previous = self.status
        self.status = SubscriptionStatus.CANCELLED
        self.cancelled_at, self.cancellation_reason = at, reason
        self.cancel_at_period_end = False
        self.pending_plan = None
        self.record(
            ev.SubscriptionCancelled(
                **self._common(),
                price=self.price,
                reason=reason,
                cancelled_at=at,
                at_period_end=at_period_end,
                period=self._period_ref(),
                previous_status=previous,
            ),
            at=at,
        )

    def renew(self, *, at: datetime) -> None:
        """RenewSubscription: the current period has ended — roll into the next
        (SubscriptionRenewed), or end a scheduled cancellation."""
        if self.current_period_end > at:
            raise InvalidTransition("The current period has not ended yet.")
        ended = self.current_period_end
        if self.cancel_at_period_end and self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED):
            self._end(at=ended, reason=self.cancellation_reason, at_period_end=True)
            return
        if self.status != SubscriptionStatus.ACTIVE:
            raise InvalidTransition(f"Only an active subscription renews (it is {self.status}).")
        previous = self._period_ref()
        self._move_to_period(self.billing_anchor, self.period_index + 1)
        self._apply_due_price_change(boundary=ended)
        self.record(
            ev.SubscriptionRenewed(
                **self._common(), price=self.price, previous_period=previous, period=self._period_ref()
            ),
            at=ended,
        )

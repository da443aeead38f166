"""Time-driven work of the Subscriptions context (run by beat and by test clocks).

    expire_trials            trials whose end passed → TrialExpired (+ Activated/Suspended/Cancelled)
    remind_trials_ending     TRIAL_REMINDER_DAYS before the end → TrialEndingSoon
    renew_subscriptions      periods that ended → SubscriptionRenewed, or the scheduled cancellation
                             (PriceChanged first when a scheduled price change is due)
    schedule_price_changes   running price migrations → PriceChangeScheduled / left out, in batches

Each is idempotent: what it did is no longer due, so a second run finds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Min, Q

from sharedkernel.clock import FixedClock
from sharedkernel.correlation import new_chain
from sharedkernel.errors import DomainError
from sharedkernel.scheduling import in_scope, scheduled_job
from subscriptions import commands
from subscriptions.models import MigrationStatus, PriceMigration, Subscription, SubscriptionStatus, UsagePeriod


def _each(ids, run) -> int:
    handled = 0
    for subscription_id in ids:
        with new_chain():
            try:
                run(subscription_id)
                handled += 1
            except DomainError:
                pass  # someone else got there first (a customer cancelled, a second beat)
    return handled


# -- trial expiry ------------------------------------------------------------------


def _trialing(test_clock_id):
    return in_scope(Subscription.objects.filter(status=SubscriptionStatus.TRIALING), test_clock_id)


def next_trial_end(test_clock_id: str | None) -> datetime | None:
    return _trialing(test_clock_id).aggregate(at=Min("trial_end"))["at"]


@scheduled_job("subscriptions.expire_trials", next_due=next_trial_end)
def expire_trials(now: datetime, test_clock_id: str | None) -> int:
    clock = FixedClock(now)
    ids = list(_trialing(test_clock_id).filter(trial_end__lte=now).values_list("pk", flat=True))
    return _each(ids, lambda pk: commands.expire_trial(subscription_id=pk, clock=clock))


# -- trial-ending reminder -------------------------------------------------------------


def _unreminded(test_clock_id):
    return _trialing(test_clock_id).filter(trial_reminder_sent=False)


def next_trial_reminder(test_clock_id: str | None) -> datetime | None:
    first_end = _unreminded(test_clock_id).aggregate(at=Min("trial_end"))["at"]
    return first_end - timedelta(days=settings.TRIAL_REMINDER_DAYS) if first_end else None


@scheduled_job("subscriptions.remind_trials_ending", next_due=next_trial_reminder)
def remind_trials_ending(now: datetime, test_clock_id: str | None) -> int:
    days = settings.TRIAL_REMINDER_DAYS
    clock = FixedClock(now)
    ids = list(
        _unreminded(test_clock_id)
        .filter(trial_end__lte=now + timedelta(days=days), trial_end__gt=now)
        .values_list("pk", flat=True)
    )
    return _each(ids, lambda pk: commands.remind_trial_ending(subscription_id=pk, days_before=days, clock=clock))


# -- renewals and cancellations at period end -------------------------------------------


#: What renews at period end: active subscriptions, and suspended ones set to cancel then.
RENEWABLE = (
    Q(status=SubscriptionStatus.ACTIVE),
    Q(status=SubscriptionStatus.SUSPENDED, cancel_at_period_end=True),
)


def _renewable(test_clock_id, which: Q | None = None):
    due = which or (RENEWABLE[0] | RENEWABLE[1])
    return in_scope(Subscription.objects.filter(due), test_clock_id)


def next_period_end(test_clock_id: str | None) -> datetime | None:
    return _renewable(test_clock_id).aggregate(at=Min("current_period_end"))["at"]


@scheduled_job("subscriptions.renew_subscriptions", next_due=next_period_end)
def renew_subscriptions(now: datetime, test_clock_id: str | None) -> int:
    """In batches, one status at a time: the (status, period end, id) index then hands each batch
    over in order, instead of sorting every due subscription again for each batch."""
    total = 0
    for which in RENEWABLE:
        while renewed := commands.renew_due_subscriptions(
            due=_renewable(test_clock_id, which).filter(current_period_end__lte=now), now=now
        ):
            total += renewed
    return total


# -- usage: periods whose grace window for late records has passed ----------------------


def _usage_periods(test_clock_id):
    return in_scope(UsagePeriod.objects.filter(calculated_at__isnull=True), test_clock_id)


@scheduled_job(
    "subscriptions.calculate_usage",
    next_due=lambda scope: _usage_periods(scope).aggregate(at=Min("due_at"))["at"],
)
def calculate_usage(now: datetime, test_clock_id: str | None) -> int:
    total = 0
    while True:
        done = commands.calculate_due_periods(_usage_periods(test_clock_id).filter(due_at__lte=now), now)
        total += done
        if not done:
            return total


# -- price migrations: schedule the price changes of running migrations, in batches ---------


def _migrations_with_work():
    cancelled_with_changes = Subscription.objects.filter(scheduled_migration_id__isnull=False).values(
        "scheduled_migration_id"
    )
    return PriceMigration.objects.filter(
        Q(status=MigrationStatus.RUNNING) | Q(status=MigrationStatus.CANCELLED, pk__in=cancelled_with_changes)
    )


def next_price_migration_batch(test_clock_id: str | None) -> datetime | None:
    """Due at once while a migration runs (or a cancelled one still has scheduled changes). A migration
    spans customers on real time and on test clocks alike, so it runs in the real-time scope only."""
    if test_clock_id:
        return None
    return _migrations_with_work().aggregate(at=Min("created_at"))["at"]


@scheduled_job("subscriptions.schedule_price_changes", next_due=next_price_migration_batch)
def schedule_price_changes(now: datetime, test_clock_id: str | None) -> int:
    """Batch after batch (PRICE_MIGRATION_BATCH per transaction) until every running migration has
    scheduled or left out all it selects; a crash loses at most the batch in flight, which the next
    beat redoes from the committed cursor."""
    if test_clock_id:
        return 0
    total = 0
    for migration in list(_migrations_with_work()):
        batch = (
            commands.schedule_price_change_batch
            if migration.status == MigrationStatus.RUNNING
            else commands.cancel_scheduled_changes_batch
        )
        while handled := batch(migration_id=migration.pk, now=now):
            total += handled
        if migration.status == MigrationStatus.RUNNING:
            commands.schedule_price_change_batch(migration_id=migration.pk, now=now)  # completes it
    return total

"""Application services of the PriceMigration aggregate (subscriptions/models/price_migrations.py).

Draft, start, pause, resume and cancel are one transaction each. Scheduling runs in batches
(:func:`schedule_price_change_batch`, PRICE_MIGRATION_BATCH subscriptions per transaction), called by
the beat job until nothing is left; the migration row is locked for the batch, so two beats never
work on one migration at once, and the unique PriceMigrationItem row backs that up.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from django.conf import settings

from sharedkernel.aggregates import bulk_save_locked
from sharedkernel.clock import Clock, SystemClock
from sharedkernel.commands import command
from sharedkernel.correlation import current_cause
from sharedkernel.errors import InvalidInput, NotFound
from sharedkernel.eventstore import append_batch, save_and_publish
from subscriptions.commands.subscriptions import publish_each_chain
from subscriptions.models import (
    ItemOutcome,
    MigrationStatus,
    Plan,
    PlanVersion,
    PriceChangeDropped,
    PriceMigration,
    PriceMigrationItem,
    Subscription,
)
from subscriptions.queries import clock_times, decisions, outcome_counts, selected

SCHEDULE_FIELDS = [
    "scheduled_migration_id",
    "scheduled_version",
    "scheduled_price_minor",
    "scheduled_effective_at",
]


def _now(clock: Clock | None) -> datetime:
    return (clock or SystemClock()).now()


def _migration(migration_id, *, lock: bool = False) -> PriceMigration:
    query = PriceMigration.objects.select_related("plan")
    migration = (query.select_for_update(of=("self",)) if lock else query).filter(pk=migration_id).first()
    if migration is None:
        raise NotFound("No such price migration.")
    return migration


@command(aggregate="PriceMigration", records=("subscriptions.PriceMigrationDrafted",))
def draft_price_migration(
    *,
    plan_id: str,
    to_version: int,
    effective_from: datetime,
    from_versions: list[int] | None = None,
    currencies: list[str] | None = None,
    subscription_ids: list[str] | None = None,
    created_before: datetime | None = None,
    clock: Clock | None = None,
) -> PriceMigration:
    """PriceMigrationDrafted. The explicit subscriptions must be the plan's."""
    plan = Plan.objects.filter(pk=plan_id).first()
    if plan is None:
        raise InvalidInput("No such plan.", details={"plan": "does not exist"})
    ids = [str(s) for s in subscription_ids or []]
    if ids:
        known = {str(pk) for pk in Subscription.objects.filter(pk__in=ids, plan=plan).values_list("pk", flat=True)}
        if unknown := sorted(set(ids) - known):
            raise InvalidInput("Some subscriptions are not on this plan.", details={"subscriptions": unknown[:10]})
    migration = PriceMigration.draft(
        plan=plan,
        target=PlanVersion.objects.filter(plan=plan, version=to_version).first(),
        effective_from=effective_from,
        from_versions=from_versions or [],
        currencies=currencies or [],
        subscription_ids=ids,
        created_before=created_before,
        at=_now(clock),
    )
    save_and_publish(migration)
    return migration


def _transition(migration_id, verb: str, clock: Clock | None) -> PriceMigration:
    migration = _migration(migration_id, lock=True)
    getattr(migration, verb)(at=_now(clock))
    save_and_publish(migration)
    return migration


@command(aggregate="PriceMigration", records=("subscriptions.PriceMigrationStarted",))
def start_price_migration(*, migration_id, clock: Clock | None = None) -> PriceMigration:
    """StartPriceMigration → PriceMigrationStarted; the beat job then schedules its changes in batches."""
    return _transition(migration_id, "start", clock)


@command(aggregate="PriceMigration", records=("subscriptions.PriceMigrationPaused",))
def pause_price_migration(*, migration_id, clock: Clock | None = None) -> PriceMigration:
    """PausePriceMigration → PriceMigrationPaused; no batch runs until it is resumed."""
    return _transition(migration_id, "pause", clock)


@command(aggregate="PriceMigration", records=("subscriptions.PriceMigrationResumed",))
def resume_price_migration(*, migration_id, clock: Clock | None = None) -> PriceMigration:
    """ResumePriceMigration → PriceMigrationResumed."""
    return _transition(migration_id, "resume", clock)


@command(aggregate="PriceMigration", records=("subscriptions.PriceMigrationCancelled",))
def cancel_price_migration(*, migration_id, clock: Clock | None = None) -> PriceMigration:
    """PriceMigrationCancelled; the beat job then cancels the changes it scheduled, batch by batch."""
    return _transition(migration_id, "cancel", clock)


# -- the batches the beat job runs -----------------------------------------------------


@command(
    aggregate="Subscription", records=("subscriptions.PriceChangeScheduled", "subscriptions.PriceMigrationCompleted")
)
def schedule_price_change_batch(*, migration_id, now: datetime, limit: int | None = None) -> int:
    """Up to ``limit`` subscriptions after the cursor: PriceChangeScheduled, or left out; then the cursor
    moves past them (PriceMigrationCompleted when none is left). Returns how many were handled."""
    limit = limit or settings.PRICE_MIGRATION_BATCH
    migration = (
        PriceMigration.objects.select_for_update(skip_locked=True)
        .select_related("plan")
        .filter(pk=migration_id, status=MigrationStatus.RUNNING)
        .first()
    )
    if migration is None:
        return 0  # not running, or another worker holds this batch
    query = selected(migration)
    if migration.cursor:
        query = query.filter(pk__gt=migration.cursor)
    subs = list(query.select_for_update(of=("self",)).select_related("plan").order_by("pk")[:limit])
    if not subs:
        counts = outcome_counts(migration)
        migration.complete(
            scheduled=counts["scheduled"] + counts["moved"] + counts["cancelled"],
            left_out=counts["left_out"],
            at=now,
        )
        save_and_publish(migration)
        return 0
    items, changed = [], []
    for sub, decision in decisions(migration, subs, now):
        item = PriceMigrationItem(
            migration=migration,
            subscription_id=sub.pk,
            currency=sub.currency,
            old_price_minor=decision.old_price.minor_units,
            decided_at=now,
        )
        if not decision.moves:
            item.outcome, item.reason = ItemOutcome.LEFT_OUT, decision.reason
        else:
            sub.schedule_price_change(
                migration_id=str(migration.pk),
                to_version=migration.to_version,
                new_price=decision.new_price,
                effective_at=decision.effective_at,
                at=clock_times([sub], now)[sub.pk],
            )
            item.outcome = ItemOutcome.SCHEDULED
            item.new_price_minor, item.effective_at = decision.new_price.minor_units, decision.effective_at
            changed.append(sub)
        items.append(item)
    PriceMigrationItem.objects.bulk_create(items)  # the unique constraint refuses a second item per subscription
    bulk_save_locked(changed, SCHEDULE_FIELDS)
    publish_each_chain(changed)
    migration.handled_up_to(subs[-1].pk)
    save_and_publish(migration)
    return len(subs)


@command(aggregate="Subscription", records=("subscriptions.PriceChangeCancelled",))
def cancel_scheduled_changes_batch(*, migration_id, now: datetime, limit: int | None = None) -> int:
    """A cancelled migration's scheduled changes that have not happened: PriceChangeCancelled."""
    limit = limit or settings.PRICE_MIGRATION_BATCH
    subs = list(
        Subscription.objects.select_for_update(of=("self",), skip_locked=True)
        .select_related("plan")
        .filter(scheduled_migration_id=migration_id)
        .order_by("pk")[:limit]
    )
    for sub in subs:
        sub.cancel_price_change(reason=PriceChangeDropped.MIGRATION_CANCELLED, at=clock_times([sub], now)[sub.pk])
    bulk_save_locked(subs, SCHEDULE_FIELDS)
    append_batch((current_cause(), sub.pull_events()) for sub in subs)
    return len(subs)


def record_outcomes(moved: list[tuple[str, str]], cancelled: list[tuple[str, str]]) -> None:
    """Progress: PriceChanged → moved, PriceChangeCancelled → cancelled (a projection of our own events)."""
    for pairs, outcome in ((moved, ItemOutcome.MOVED), (cancelled, ItemOutcome.CANCELLED)):
        by_migration = defaultdict(list)
        for migration_id, subscription_id in pairs:
            by_migration[migration_id].append(uuid.UUID(subscription_id))
        for migration_id, subscription_ids in by_migration.items():
            PriceMigrationItem.objects.filter(
                migration_id=migration_id, subscription_id__in=subscription_ids, outcome=ItemOutcome.SCHEDULED
            ).update(outcome=outcome)

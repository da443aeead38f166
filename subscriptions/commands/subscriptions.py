"""Commands on the Subscription aggregate: subscribe, change plan, cancel, resume, suspend, activate,
the trial's end and reminder, the renewal batch, and the notes Billing sends (dunning)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from sharedkernel.aggregates import bulk_save_locked
from sharedkernel.bus import LARGE_BATCH
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.errors import ConcurrentUpdate, NotFound
from sharedkernel.eventstore import append_batch, save_and_publish
from subscriptions.commands.plans import load_plan
from subscriptions.commands.usage import open_usage_periods
from subscriptions.models import (
    LIVE_STATUSES,
    Customer,
    ResumeInitiator,
    Subscription,
    SubscriptionStatus,
    SuspensionReason,
)
from subscriptions.rules import PlanChangePolicy

plan_change_policy = PlanChangePolicy()


@command(aggregate="Subscription", records=())
def record_dunning(*, subscription_ids: list[str], since: datetime | None) -> int:
    """Billing's dunning of these subscriptions began (``since``) or a payment ended it (None); no event.
    Only rows whose note changes are written, locked, their versions advanced (a writer holding an
    older copy gets a conflict instead of writing the note back); returns how many."""
    if not subscription_ids:
        return 0
    subs = list(
        Subscription.objects.select_for_update(of=("self",))
        .filter(pk__in=subscription_ids, dunning_since__isnull=since is not None)
        .order_by("pk")  # every batch locks rows in one order: no deadlock
    )
    for sub in subs:
        sub.note_dunning(since=since)
    bulk_save_locked(subs, ["dunning_since"])
    return len(subs)


def _subscription(subscription_id, expected_version: int | None = None) -> Subscription:
    sub = (
        Subscription.objects.select_related("plan", "customer", "pending_plan")
        .prefetch_related("plan__price_rows", "pending_plan__price_rows")
        .filter(pk=subscription_id)
        .first()
    )
    if sub is None:
        raise NotFound("No such subscription.")
    if expected_version is not None and expected_version != sub.version:
        raise ConcurrentUpdate("Subscription", sub.pk, expected_version)
    return sub


def _clock(sub: Subscription, clock: Clock | None) -> Clock:
    return clock or clock_for(sub.test_clock_id)


@command(
    aggregate="Subscription",
    records=("subscriptions.SubscriptionCreated", "subscriptions.PlanSelected", "subscriptions.TrialStarted"),
)
def subscribe(
    *, customer_id: str, plan_id: str, currency: str | None = None, trial: bool = False, clock: Clock | None = None
) -> Subscription:
    """CreateSubscription + SelectPlan (+ StartTrial) → SubscriptionCreated, PlanSelected (+ TrialStarted)."""
    # Locking the customer serialises two subscribe calls for the same person,
    # so "one live subscription per plan" and "one trial" cannot be raced.
    customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if customer is None:
        raise NotFound("No such customer.")
    plan = load_plan(plan_id)
    existing = customer.subscriptions.all()
    sub = Subscription.start(
        customer=customer,
        plan=plan,
        currency=(currency or customer.currency).upper(),
        trial=trial,
        at=(clock or clock_for(customer.test_clock_id)).now(),
        trial_used_before=existing.filter(trial_start__isnull=False).exists(),
        live_plan_ids=frozenset(
            str(p) for p in existing.filter(status__in=LIVE_STATUSES).values_list("plan_id", flat=True)
        ),
    )
    save_and_publish(sub)
    return sub


@command(
    aggregate="Subscription",
    records=("subscriptions.PlanChangeRequested", "subscriptions.PriceChangeCancelled", "subscriptions.PlanChanged"),
)
def change_plan(
    *,
    subscription_id: str,
    plan_id: str,
    by_staff: bool = False,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> tuple[Subscription, bool]:
    """ChangePlan → PlanChanged (PriceChangeCancelled first if a price change was scheduled), or
    PlanChangeRequested when it waits for staff approval. Returns (subscription, changed); ``changed`` is False when an
    enterprise change waits for staff approval."""
    sub = _subscription(subscription_id, expected_version)
    target = load_plan(plan_id)
    changed = sub.change_plan(
        target=target, at=_clock(sub, clock).now(), policy=plan_change_policy, approved_by_staff=by_staff
    )
    save_and_publish(sub)
    return sub, changed


@command(aggregate="Subscription", records=("subscriptions.PriceChangeCancelled", "subscriptions.PlanChanged"))
def approve_plan_change(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    """ApprovePlanChange (staff) → PlanChanged to the plan that waited, and PriceChangeCancelled if a
    price change was scheduled."""
    sub = _subscription(subscription_id)
    sub.approve_plan_change(at=_clock(sub, clock).now(), policy=plan_change_policy)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.PlanChangeDeclined",))
def decline_plan_change(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    """DeclinePlanChange (staff) → PlanChangeDeclined."""
    sub = _subscription(subscription_id)
    sub.decline_plan_change(at=_clock(sub, clock).now())
    save_and_publish(sub)
    return sub


@command(
    aggregate="Subscription",
    records=(
        "subscriptions.PriceChangeCancelled",
        "subscriptions.SubscriptionCancellationScheduled",
        "subscriptions.SubscriptionCancelled",
    ),
)
def cancel_subscription(
    *,
    subscription_id: str,
    reason: str = "",
    at_period_end: bool = False,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> Subscription:
    """CancelSubscription → SubscriptionCancelled now, or SubscriptionCancellationScheduled at the end
    of the period (or trial); PriceChangeCancelled first if a price change was scheduled. An immediate
    cancellation opens the partial period's usage for billing."""
    sub = _subscription(subscription_id, expected_version)
    period_start, now = sub.current_period_start, _clock(sub, clock).now()
    sub.cancel(at=now, reason=reason, at_period_end=at_period_end)
    save_and_publish(sub)
    if sub.status == SubscriptionStatus.CANCELLED and period_start < now:
        open_usage_periods([sub], {sub.pk: (period_start, now)})  # the partial period's usage is billed
    return sub


@command(aggregate="Subscription", records=("subscriptions.SubscriptionResumed",))
def resume_subscription(
    *,
    subscription_id: str,
    initiator: str = ResumeInitiator.CUSTOMER,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> Subscription:
    """ResumeSubscription → SubscriptionResumed (from a suspension, or withdrawing a scheduled cancellation)."""
    sub = _subscription(subscription_id, expected_version)
    sub.resume(at=_clock(sub, clock).now(), initiator=initiator)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.SubscriptionSuspended",))
def suspend_subscription(
    *,
    subscription_id: str,
    reason: str = SuspensionReason.STAFF,
    expected_version: int | None = None,
    clock: Clock | None = None,
) -> Subscription:
    """SuspendSubscription → SubscriptionSuspended."""
    sub = _subscription(subscription_id, expected_version)
    sub.suspend(at=_clock(sub, clock).now(), reason=reason)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.SubscriptionActivated",))
def activate_subscription(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    """ActivateSubscription (the first invoice was paid) → SubscriptionActivated."""
    sub = _subscription(subscription_id)
    sub.activate(at=_clock(sub, clock).now())
    save_and_publish(sub)
    return sub


@command(
    aggregate="Subscription",
    records=(
        "subscriptions.TrialExpired",
        "subscriptions.PriceChanged",
        "subscriptions.SubscriptionActivated",
        "subscriptions.SubscriptionSuspended",
        "subscriptions.PriceChangeCancelled",
        "subscriptions.SubscriptionCancelled",
    ),
)
def expire_trial(*, subscription_id: str, clock: Clock | None = None) -> Subscription:
    """ExpireTrial → TrialExpired, then SubscriptionActivated (a payment method is on file; PriceChanged
    if one was due), SubscriptionSuspended (none is), or SubscriptionCancelled (+ PriceChangeCancelled)
    when a cancellation was scheduled."""
    sub = _subscription(subscription_id)
    sub.expire_trial(at=_clock(sub, clock).now(), has_payment_method=sub.customer.has_payment_method)
    save_and_publish(sub)
    return sub


@command(aggregate="Subscription", records=("subscriptions.TrialEndingSoon",))
def remind_trial_ending(*, subscription_id: str, days_before: int, clock: Clock | None = None) -> Subscription:
    """RemindTrialEnding → TrialEndingSoon, once per trial."""
    sub = _subscription(subscription_id)
    sub.remind_trial_ending(
        at=_clock(sub, clock).now(), days_before=days_before, has_payment_method=sub.customer.has_payment_method
    )
    save_and_publish(sub)
    return sub


def publish_each_chain(subs: list[Subscription]) -> None:
    """Append each subscription's recorded events as a correlated chain of its own (a batch step
    renews or reprices many at once, and each change leads to its own invoice, e-mails, ...)."""
    append_batch(
        (
            Cause(
                new_correlation_id(),
                current_cause().causation_id,
                str(sub.test_clock_id) if sub.test_clock_id else None,
            ),
            sub.pull_events(),
        )
        for sub in subs
    )


RENEWAL_FIELDS = [
    "status",
    "billing_anchor",
    "period_index",
    "current_period_start",
    "current_period_end",
    "cancel_at_period_end",
    "cancellation_reason",
    "cancelled_at",
    "pending_plan",
    "plan_version",
    "price_minor",
    "scheduled_migration_id",
    "scheduled_version",
    "scheduled_price_minor",
    "scheduled_effective_at",
]


@command(
    aggregate="Subscription",
    records=(
        "subscriptions.PriceChanged",
        "subscriptions.SubscriptionRenewed",
        "subscriptions.PriceChangeCancelled",
        "subscriptions.SubscriptionCancelled",
    ),
)
def renew_due_subscriptions(*, due: QuerySet, now, limit: int = LARGE_BATCH) -> int:
    """RenewSubscription for up to ``limit`` subscriptions whose period ended, in one transaction →
    SubscriptionRenewed (PriceChanged first when a scheduled change is due), or SubscriptionCancelled
    (+ PriceChangeCancelled) for one scheduled to cancel.

    A bill run renews many subscriptions at once; each still goes through
    ``Subscription.renew`` and keeps its own invariants. Rows are locked
    (skipping rows another worker holds), so a second run at the same time
    renews nothing twice; each renewal starts its own correlated chain.
    """
    subs = list(
        due.select_for_update(of=("self",), skip_locked=True)
        .select_related("plan")
        .order_by("current_period_end", "id")[:limit]
    )
    if not subs:
        return 0
    closing = {sub.pk: (sub.current_period_start, sub.current_period_end) for sub in subs}
    for sub in subs:
        sub.renew(at=now)
    bulk_save_locked(subs, RENEWAL_FIELDS)
    open_usage_periods(subs, closing)
    publish_each_chain(subs)
    return len(subs)

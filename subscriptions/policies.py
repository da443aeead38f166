"""Reactions of the Subscriptions context (the purple stickies).

    billing.PaymentSucceeded      → ActivateSubscription (pending payment)
                                    or ResumeSubscription (suspended for non-payment)
    billing.DunningExhausted      → SuspendSubscription (active)
                                    or CancelSubscription (never paid)
    billing.DunningStarted        → note it (a price migration leaves the subscription out)
    billing.PaymentSucceeded      → the note of dunning is cleared
    billing.PaymentMethodUpdated  → note it; ResumeSubscription for trials that
                                    ended without a payment method
    subscriptions.PriceChanged /
    subscriptions.PriceChangeCancelled → a price migration's progress (moved / cancelled)

A reaction happens at the time of its cause (the event's ``occurred_on``).
"""

from __future__ import annotations

import uuid

from sharedkernel.bus import LARGE_BATCH, reacts_to
from sharedkernel.clock import FixedClock
from sharedkernel.correlation import caused_by
from sharedkernel.events import DomainEvent
from sharedkernel.eventstore import cause_of
from subscriptions import commands
from subscriptions.acl import CollectionGaveUp, CollectionInDunning, InvoiceSettled, PaymentMethodNotice
from subscriptions.models import ResumeInitiator, Subscription, SubscriptionStatus, SuspensionReason


def _ours(subscription_id: str | None) -> Subscription | None:
    if not subscription_id:
        return None
    return Subscription.objects.filter(pk=subscription_id).only("status", "suspension_reason").first()


@reacts_to("billing.PaymentSucceeded", batch=True, batch_size=LARGE_BATCH)
def activate_or_resume_when_paid(events: list[DomainEvent]) -> None:
    """A bill run pays thousands of renewals of active subscriptions: one query finds the
    few that need anything (pending or suspended for non-payment)."""
    settled = [(event, InvoiceSettled.from_payload(event.payload)) for event in events]
    waiting = {
        str(sub.pk): sub
        for sub in Subscription.objects.filter(
            pk__in={s.subscription_id for _, s in settled if _is_uuid(s.subscription_id)},
            status__in=[SubscriptionStatus.PENDING_PAYMENT, SubscriptionStatus.SUSPENDED],
        ).only("status", "suspension_reason")
    }
    for event, paid in settled:
        sub = waiting.get(str(paid.subscription_id))
        if sub is None:
            continue
        clock = FixedClock(event.occurred_on)
        with caused_by(cause_of(event)):
            if sub.status == SubscriptionStatus.PENDING_PAYMENT:
                commands.activate_subscription(subscription_id=sub.pk, clock=clock)
            elif sub.suspension_reason == SuspensionReason.NON_PAYMENT:
                commands.resume_subscription(subscription_id=sub.pk, initiator=ResumeInitiator.SYSTEM, clock=clock)


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@reacts_to("billing.DunningExhausted")
def suspend_when_dunning_exhausted(event: DomainEvent) -> None:
    gave_up = CollectionGaveUp.from_payload(event.payload)
    sub = _ours(gave_up.subscription_id)
    if sub is None:
        return
    clock = FixedClock(event.occurred_on)
    if sub.status == SubscriptionStatus.ACTIVE:
        commands.suspend_subscription(subscription_id=sub.pk, reason=SuspensionReason.NON_PAYMENT, clock=clock)
    elif sub.status == SubscriptionStatus.PENDING_PAYMENT:
        commands.cancel_subscription(subscription_id=sub.pk, reason="first payment failed", clock=clock)


@reacts_to("billing.DunningStarted")
def note_dunning_started(event: DomainEvent) -> None:
    dunning = CollectionInDunning.from_payload(event.payload)
    if _is_uuid(dunning.subscription_id):
        commands.record_dunning(subscription_ids=[dunning.subscription_id], since=event.occurred_on)


@reacts_to("billing.PaymentSucceeded", batch=True, batch_size=LARGE_BATCH)
def note_dunning_over_when_paid(events: list[DomainEvent]) -> None:
    """One query for a bill run's thousands of payments: only subscriptions noted in dunning are written."""
    paid = {InvoiceSettled.from_payload(event.payload).subscription_id for event in events}
    commands.record_dunning(subscription_ids=[s for s in paid if _is_uuid(s)], since=None)


@reacts_to("billing.PaymentMethodUpdated")
def resume_when_payment_method_added(event: DomainEvent) -> None:
    notice = PaymentMethodNotice.from_payload(event.payload)
    if commands.record_payment_method(customer_id=notice.customer_id, present=notice.present) is None:
        return
    if not notice.present:
        return
    waiting = Subscription.objects.filter(
        customer_id=notice.customer_id,
        status=SubscriptionStatus.SUSPENDED,
        suspension_reason=SuspensionReason.NO_PAYMENT_METHOD,
    ).values_list("pk", flat=True)
    clock = FixedClock(event.occurred_on)
    for subscription_id in waiting:
        commands.resume_subscription(subscription_id=subscription_id, initiator=ResumeInitiator.SYSTEM, clock=clock)


@reacts_to("subscriptions.PriceChanged", "subscriptions.PriceChangeCancelled", batch=True, batch_size=LARGE_BATCH)
def count_price_migration_progress(events: list[DomainEvent]) -> None:
    """A migration's progress (moved / cancelled) follows what happened to the changes it scheduled."""

    pairs = [(e.name, e.payload["migration_id"], e.payload["subscription_id"]) for e in events]
    commands.record_outcomes(
        moved=[(m, s) for name, m, s in pairs if name == "PriceChanged"],
        cancelled=[(m, s) for name, m, s in pairs if name == "PriceChangeCancelled"],
    )

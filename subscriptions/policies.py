"""Reactions of the Subscriptions context (the purple stickies).

    billing.PaymentSucceeded      → ActivateSubscription (pending payment)
                                    or ResumeSubscription (suspended for non-payment)
    billing.DunningExhausted      → SuspendSubscription (active)
                                    or CancelSubscription (never paid)
    billing.PaymentMethodUpdated  → note it; ResumeSubscription for trials that
                                    ended without a payment method

A reaction happens at the time of its cause (the event's ``occurred_on``).
"""

from __future__ import annotations

from sharedkernel.bus import reacts_to
from sharedkernel.clock import FixedClock
from sharedkernel.events import DomainEvent
from subscriptions import commands
from subscriptions.acl import CollectionGaveUp, InvoiceSettled, PaymentMethodNotice
from subscriptions.models import ResumeInitiator, Subscription, SubscriptionStatus, SuspensionReason


def _ours(subscription_id: str | None) -> Subscription | None:
    if not subscription_id:
        return None
    return Subscription.objects.filter(pk=subscription_id).only("status", "suspension_reason").first()


@reacts_to("billing.PaymentSucceeded")
def activate_or_resume_when_paid(event: DomainEvent) -> None:
    settled = InvoiceSettled.from_payload(event.payload)
    sub = _ours(settled.subscription_id)
    if sub is None:
        return
    clock = FixedClock(event.occurred_on)
    if sub.status == SubscriptionStatus.PENDING_PAYMENT:
        commands.activate_subscription(subscription_id=sub.pk, clock=clock)
    elif sub.status == SubscriptionStatus.SUSPENDED and sub.suspension_reason == SuspensionReason.NON_PAYMENT:
        commands.resume_subscription(subscription_id=sub.pk, initiator=ResumeInitiator.SYSTEM, clock=clock)


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

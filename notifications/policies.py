"""Reactions of the Notifications context, one handler per reaction (the purple stickies).

    subscriptions.CustomerRegistered     → remember_recipient (projection: the Recipient we write to)
                                         → welcome (welcome e-mail)
    subscriptions.Subscription*/Plan*    → remember_plan (projection: the recipient's plan name)
    subscriptions.TrialStarted           → schedule_trial_reminder (ReminderScheduled, NOTIFY_TRIAL_REMINDER_DAYS before)
    subscriptions.SubscriptionCancelled  → confirm_cancellation
    subscriptions.TrialExpired           → tell_trial_ended
    subscriptions.SubscriptionCancelled,
      TrialExpired                       → drop_trial_reminder (no trial reminder any more)
    subscriptions.PlanChanged            → drop_trial_reminder_on_conversion (unless still trialing)
    subscriptions.PriceChangeScheduled   → price_change_notice (essential: old and new price, the date, the way out)
    billing.InvoiceFinalized             → invoice_email          billing.PaymentSucceeded → receipt
    billing.PaymentFailed                → payment_alert          billing.DunningEscalated → dunning_reminder
    every public event                   → fan_out_webhooks (deliveries to the endpoints that asked for it)

Every reaction reads other contexts' payloads only through ``notifications.acl`` (and our own rows).
A mail to a customer we have no Recipient for yet waits for ``recipient_needed`` (CustomerRegistered is
on its way).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications import acl, mail, webhooks
from notifications import events as ev
from notifications.models import Recipient, Reminder, WebhookDelivery, WebhookEndpoint, recipient_needed
from notifications.models.webhook import PICKUP_AFTER
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.bus import LARGE_BATCH, arrived, reacts_to, wait_for
from sharedkernel.clock import clock_for
from sharedkernel.events import EVENT_CLASSES, DomainEvent
from sharedkernel.eventstore import append


def _recipient(customer_id) -> Recipient | None:
    return Recipient.objects.filter(pk=customer_id).first() if customer_id else None


def _send(
    event: DomainEvent, template: str, *, customer_id, context: dict, email: str | None = None, name: str | None = None
) -> None:
    recipient = _recipient(customer_id)
    email = email or (recipient.email if recipient else None)
    if not email:
        wait_for(event, recipient_needed(customer_id))  # CustomerRegistered is on its way
        return
    mail.queue(
        template=template,
        email=email,
        customer_id=customer_id,
        cause_event_id=event.event_id,
        cause_event_type=event.event_type,
        context={"name": name or (recipient.name if recipient else ""), "site_url": settings.SITE_URL, **context},
        essential_only=bool(recipient and recipient.essential_only),
        test_clock_id=event.test_clock_id,
        at=event.occurred_on,
    )


@reacts_to("subscriptions.CustomerRegistered", replay_safe=True)
def remember_recipient(event: DomainEvent) -> None:
    """CustomerRegistered → the Recipient we write to (preferences kept on a replay); the mail that
    waited for it goes now."""
    fact = acl.customer_registered(event.payload)
    Recipient.objects.update_or_create(customer_id=fact.customer_id, defaults=_recipient_fields(fact))
    arrived(recipient_needed(fact.customer_id))


def _recipient_fields(fact: acl.CustomerRegistered) -> dict:
    return {"name": fact.name, "email": fact.email, "user_id": fact.user_id, "test_clock_id": fact.test_clock_id}


@reacts_to("subscriptions.CustomerRegistered")
def welcome(event: DomainEvent) -> None:
    """CustomerRegistered → welcome e-mail (the payload names the address).

    It also makes sure the Recipient exists: a welcome delivery left open from before
    ``remember_recipient`` was split off has no remember_recipient delivery of its own, and the
    customer's other mail would otherwise wait for a recipient that never comes."""
    fact = acl.customer_registered(event.payload)
    _, created = Recipient.objects.get_or_create(customer_id=fact.customer_id, defaults=_recipient_fields(fact))
    if created:
        arrived(recipient_needed(fact.customer_id))
    _send(
        event,
        "welcome",
        customer_id=fact.customer_id,
        email=fact.email,
        name=fact.name,
        context={"dashboard_url": f"{settings.SITE_URL}/app/"},
    )


@reacts_to(
    "subscriptions.SubscriptionCreated",
    "subscriptions.PlanChanged",
    "subscriptions.SubscriptionActivated",
    replay_safe=True,
)
def remember_plan(event: DomainEvent) -> None:
    """The plan the recipient is on (a projection: the same fact from three events)."""
    fact = acl.customers_plan(event.payload)
    Recipient.objects.filter(pk=fact.customer_id).update(plan_name=fact.plan_name)


def reminder_days() -> int:
    return int(getattr(settings, "NOTIFY_TRIAL_REMINDER_DAYS", 3))


@reacts_to("subscriptions.TrialStarted")
def schedule_trial_reminder(event: DomainEvent) -> None:
    """TrialStarted → ReminderScheduled, NOTIFY_TRIAL_REMINDER_DAYS before the trial ends."""
    fact = acl.trial_started(event.payload)
    send_at = max(fact.trial_end - timedelta(days=reminder_days()), event.occurred_on)
    reminder, created = Reminder.objects.get_or_create(
        subscription_id=fact.subscription_id,
        defaults={
            "customer_id": fact.customer_id,
            "send_at": send_at,
            "trial_end": fact.trial_end,
            "plan_name": fact.plan_name,
            "test_clock_id": event.test_clock_id,
        },
    )
    if created:
        append(
            [
                RecordedEvent(
                    ev.ReminderScheduled(
                        reminder_id=str(reminder.pk),
                        customer_id=fact.customer_id,
                        subscription_id=fact.subscription_id,
                        send_at=send_at,
                    ),
                    event.occurred_on,
                    "Reminder",
                    str(reminder.pk),
                    1,
                    event.test_clock_id,
                )
            ]
        )


def _drop_reminder(subscription_id: str, at: datetime) -> None:
    Reminder.objects.filter(subscription_id=subscription_id, sent_at__isnull=True, cancelled_at__isnull=True).update(
        cancelled_at=at
    )


TRIAL_OVER = ("notifications.trial_over",)  # the one handler these four were split from


@reacts_to("subscriptions.SubscriptionCancelled", "subscriptions.TrialExpired", replaces=TRIAL_OVER)
def drop_trial_reminder(event: DomainEvent) -> None:
    """A trial that ends or is cancelled gets no reminder any more."""
    _drop_reminder(acl.trial_left(event.payload).subscription_id, event.occurred_on)


@reacts_to("subscriptions.PlanChanged", replaces=TRIAL_OVER)
def drop_trial_reminder_on_conversion(event: DomainEvent) -> None:
    """A plan change out of the trial (it converts) gets no reminder any more."""
    fact = acl.plan_changed(event.payload)
    if not fact.still_trialing:
        _drop_reminder(fact.subscription_id, event.occurred_on)


@reacts_to("subscriptions.SubscriptionCancelled", replaces=TRIAL_OVER)
def confirm_cancellation(event: DomainEvent) -> None:
    """SubscriptionCancelled → cancellation confirmation."""
    letter = acl.subscription_cancelled(event.payload)
    _send(event, "cancelled", customer_id=letter.customer_id, context=letter.context)


@reacts_to("subscriptions.TrialExpired", replaces=TRIAL_OVER)
def tell_trial_ended(event: DomainEvent) -> None:
    """TrialExpired → trial ended (converted, or where to add a card)."""
    letter = acl.trial_expired(event.payload)
    url = f"{settings.SITE_URL}/billing/payment-method/"
    _send(event, "trial_ended", customer_id=letter.customer_id, context={**letter.context, "payment_method_url": url})


@reacts_to("subscriptions.PriceChangeScheduled", batch=True, batch_size=LARGE_BATCH)
def price_change_notice(events: list[DomainEvent]) -> None:
    """One notice per scheduled change: a migration schedules each subscription once, and the
    handler ledger makes a redelivered event send nothing twice."""
    for event in events:
        fact = acl.price_change_scheduled(event.payload)
        sub = fact.subscription_id
        _send(
            event,
            "price_change",
            customer_id=fact.customer_id,
            context={
                "plan_name": fact.plan_name,
                "old_price": fact.old_price,
                "new_price": fact.new_price,
                "effective_on": fact.effective_on,
                "rise": fact.rise,
                "cancel_url": f"{settings.SITE_URL}/app/subscriptions/{sub}/cancel/",
                "change_plan_url": f"{settings.SITE_URL}/billing/subscriptions/{sub}/change-plan/",
            },
        )


def _billing_mail(events: list[DomainEvent], template: str, fact_of: Callable[[dict], acl.BillingMail]) -> None:
    """A bill run's worth of one billing e-mail at a time. Billing's payloads carry the name and
    address, so only preferences are looked up (one query)."""
    facts = [(event, fact_of(event.payload)) for event in events]
    prefs = dict(Recipient.objects.filter(pk__in={f.customer_id for _, f in facts}).values_list("pk", "essential_only"))
    mail.queue_many(
        [
            dict(
                template=template,
                email=fact.email,
                customer_id=fact.customer_id,
                cause_event_id=event.event_id,
                cause_event_type=event.event_type,
                context={"name": fact.name, "site_url": settings.SITE_URL, **fact.context},
                essential_only=bool(prefs.get(uuid.UUID(fact.customer_id))),
                test_clock_id=event.test_clock_id,
                at=event.occurred_on,
            )
            for event, fact in facts
        ]
    )


#: The four billing e-mails: a bill run's worth at a time, each taking over the open deliveries of
#: the one handler they were split from (notifications.billing_mail).
reacts_with_billing_mail = partial(
    reacts_to, batch=True, batch_size=LARGE_BATCH, replaces=("notifications.billing_mail",)
)


@reacts_with_billing_mail("billing.InvoiceFinalized")
def invoice_email(events: list[DomainEvent]) -> None:
    """InvoiceFinalized → the invoice e-mail, a bill run's worth at a time."""
    _billing_mail(events, "invoice", acl.invoice_finalized)


@reacts_with_billing_mail("billing.PaymentSucceeded")
def receipt(events: list[DomainEvent]) -> None:
    """PaymentSucceeded → the receipt."""
    _billing_mail(events, "receipt", acl.payment_succeeded)


@reacts_with_billing_mail("billing.PaymentFailed")
def payment_alert(events: list[DomainEvent]) -> None:
    """PaymentFailed → the payment-failed alert (where to update the card)."""
    _billing_mail(events, "payment_failed", acl.payment_failed)


@reacts_with_billing_mail("billing.DunningEscalated")
def dunning_reminder(events: list[DomainEvent]) -> None:
    """DunningEscalated → the dunning reminder, more urgent with each level (acl.dunning_escalated)."""
    _billing_mail(events, "dunning", acl.dunning_escalated)


# -- webhooks --------------------------------------------------------------------------------


def _public(event_type: str) -> bool:
    cls = EVENT_CLASSES.get(event_type)
    return cls is not None and cls.public


def _wanted_by_an_endpoint(event_types: set[str]) -> set[str]:
    """Asked as events are appended: a type no active endpoint subscribes to gets no fan-out
    delivery. An endpoint receives the events that happen after it is created or enabled."""
    wanted: set[str] = set()
    for events in WebhookEndpoint.objects.filter(active=True).values_list("events", flat=True):
        if "*" in events:
            return event_types
        wanted.update(events)
    return event_types & wanted


@reacts_to("*", accepts=_public, audience=_wanted_by_an_endpoint, batch=True, batch_size=LARGE_BATCH)
def fan_out_webhooks(events: list[DomainEvent]) -> None:
    """One delivery per (endpoint, event) for the endpoints that asked for it; attempted after commit
    (each in its own task), and by the retry job PICKUP_AFTER later should that attempt never happen."""
    endpoints = list(WebhookEndpoint.objects.filter(active=True))
    if not endpoints:
        return
    now = timezone.now()
    pickup: dict = {}  # per clock: test-clock customers' deliveries are due on their clock
    deliveries = []
    for event in events:
        owner = acl.webhook_owner(event.payload)
        for endpoint in endpoints:
            if endpoint.wants(event.event_type) and (
                endpoint.customer_id is None or str(endpoint.customer_id) == owner
            ):
                if event.test_clock_id not in pickup:
                    pickup[event.test_clock_id] = clock_for(event.test_clock_id).now() + PICKUP_AFTER
                deliveries.append(
                    WebhookDelivery(
                        endpoint=endpoint,
                        event_id=event.event_id,
                        event_type=event.event_type,
                        body=webhooks.envelope_body(event),
                        created_at=now,
                        next_attempt_at=pickup[event.test_clock_id],
                        test_clock_id=event.test_clock_id,
                    )
                )
    WebhookDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    ids = [d.pk for d in deliveries]
    transaction.on_commit(partial(webhooks.attempt_soon, ids))

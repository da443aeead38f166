"""Reactions of the Notifications context.

    subscriptions.CustomerRegistered     → welcome e-mail (and the Recipient we write to)
    subscriptions.Subscription*/Plan*    → the recipient's plan name
    subscriptions.TrialStarted           → ReminderScheduled (trial-ending reminder, NOTIFY_TRIAL_REMINDER_DAYS before)
    subscriptions.SubscriptionCancelled  → cancellation confirmation (and no trial reminder any more)
    subscriptions.TrialExpired           → trial ended
    subscriptions.PriceChangeScheduled   → price change notice (essential: old and new price, the date, the way out)
    billing.InvoiceFinalized             → invoice e-mail      billing.PaymentSucceeded → receipt
    billing.PaymentFailed                → payment alert       billing.DunningEscalated → reminder, more urgent each level
    every public event                   → webhook deliveries to the endpoints that asked for it

Every reaction reads only the event's payload (and our own Recipient rows).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from notifications import events as ev
from notifications import mail, webhooks
from notifications.models import PICKUP_AFTER, Recipient, Reminder, WebhookDelivery, WebhookEndpoint
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.bus import LARGE_BATCH, reacts_to
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
        raise LookupError(
            f"No recipient known yet for customer {customer_id}"
        )  # retried: CustomerRegistered is on its way
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


@reacts_to("subscriptions.CustomerRegistered")
def welcome(event: DomainEvent) -> None:
    p = event.payload
    Recipient.objects.update_or_create(
        customer_id=p["customer_id"],
        defaults={
            "name": p["name"],
            "email": p["email"],
            "user_id": p.get("user_id"),
            "test_clock_id": p.get("test_clock_id"),
        },
    )
    _send(event, "welcome", customer_id=p["customer_id"], context={"dashboard_url": f"{settings.SITE_URL}/app/"})


@reacts_to("subscriptions.SubscriptionCreated", "subscriptions.PlanChanged", "subscriptions.SubscriptionActivated")
def remember_plan(event: DomainEvent) -> None:
    Recipient.objects.filter(pk=event.payload["customer_id"]).update(plan_name=event.payload["plan"]["name"])


def reminder_days() -> int:
    return int(getattr(settings, "NOTIFY_TRIAL_REMINDER_DAYS", 3))


@reacts_to("subscriptions.TrialStarted")
def schedule_trial_reminder(event: DomainEvent) -> None:
    p = event.payload
    trial_end = datetime.fromisoformat(p["trial_end"])
    send_at = max(trial_end - timedelta(days=reminder_days()), event.occurred_on)
    reminder, created = Reminder.objects.get_or_create(
        subscription_id=p["subscription_id"],
        defaults={
            "customer_id": p["customer_id"],
            "send_at": send_at,
            "trial_end": trial_end,
            "plan_name": p["plan"]["name"],
            "test_clock_id": event.test_clock_id,
        },
    )
    if created:
        append(
            [
                RecordedEvent(
                    ev.ReminderScheduled(
                        reminder_id=str(reminder.pk),
                        customer_id=p["customer_id"],
                        subscription_id=p["subscription_id"],
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


@reacts_to("subscriptions.SubscriptionCancelled", "subscriptions.TrialExpired", "subscriptions.PlanChanged")
def trial_over(event: DomainEvent) -> None:
    """A trial that ends, converts or is cancelled gets no reminder any more."""
    p = event.payload
    if event.name != "PlanChanged" or p.get("status") != "trialing":
        Reminder.objects.filter(
            subscription_id=p["subscription_id"], sent_at__isnull=True, cancelled_at__isnull=True
        ).update(cancelled_at=event.occurred_on)
    if event.name == "SubscriptionCancelled":
        _send(
            event,
            "cancelled",
            customer_id=p["customer_id"],
            context={
                "plan_name": p["plan"]["name"],
                "reason": p.get("reason", ""),
                "at_period_end": p.get("at_period_end"),
                "cancelled_at": p["cancelled_at"][:10],
            },
        )
    elif event.name == "TrialExpired":
        _send(
            event,
            "trial_ended",
            customer_id=p["customer_id"],
            context={
                "plan_name": p["plan"]["name"],
                "converted": p.get("converted"),
                "payment_method_url": f"{settings.SITE_URL}/billing/payment-method/",
            },
        )


@reacts_to("subscriptions.PriceChangeScheduled", batch=True, batch_size=LARGE_BATCH)
def price_change_notice(events: list[DomainEvent]) -> None:
    """One notice per scheduled change: a migration schedules each subscription once, and the
    handler ledger makes a redelivered event send nothing twice."""
    for event in events:
        p = event.payload
        sub = p["subscription_id"]
        _send(
            event,
            "price_change",
            customer_id=p["customer_id"],
            context={
                "plan_name": p["plan"]["name"],
                "old_price": _money(p["old_price"]),
                "new_price": _money(p["new_price"]),
                "effective_on": p["effective_at"][:10],
                "rise": Decimal(p["new_price"]["amount"]) > Decimal(p["old_price"]["amount"]),
                "cancel_url": f"{settings.SITE_URL}/app/subscriptions/{sub}/cancel/",
                "change_plan_url": f"{settings.SITE_URL}/billing/subscriptions/{sub}/change-plan/",
            },
        )


def _money(m: dict | None) -> str:
    return f"{m['amount']} {m['currency']}" if m else ""


def _invoice(p: dict) -> dict:
    return {
        "number": p["number"],
        "amount_due": _money(p["amount_due"]),
        "total": _money(p["total"]),
        "url": p["url"],
        "plan_name": p.get("plan_name") or "",
        "lines": [{"description": line["description"], "amount": _money(line["amount"])} for line in p["lines"]],
    }


def _receipt(p: dict) -> dict:
    return {
        "invoice_number": p["invoice_number"],
        "amount": _money(p["amount"]),
        "paid_at": p["paid_at"][:10],
        "plan_name": p.get("plan_name") or "",
    }


def _alert(p: dict) -> dict:
    return {
        "invoice_number": p["invoice_number"],
        "amount": _money(p["amount"]),
        "reason": p["failure_message"],
        "next_retry_at": (p.get("next_retry_at") or "")[:16].replace("T", " "),
        "update_url": p["update_payment_method_url"],
    }


URGENCY = {1: "Reminder", 2: "Second notice", 3: "Final notice"}


def _dunning(p: dict) -> dict:
    level = int(p["level"])
    return {
        "invoice_number": p["invoice_number"],
        "amount": _money(p["amount"]),
        "level": level,
        "final": bool(p.get("final")),
        "urgency": "Final notice" if p.get("final") else URGENCY.get(level, "Urgent"),
        "update_url": p["update_payment_method_url"],
        "plan_name": p.get("plan_name") or "",
    }


BILLING_MAIL = {
    "billing.InvoiceFinalized": ("invoice", _invoice),
    "billing.PaymentSucceeded": ("receipt", _receipt),
    "billing.PaymentFailed": ("payment_failed", _alert),
    "billing.DunningEscalated": ("dunning", _dunning),
}


@reacts_to(*BILLING_MAIL, batch=True, batch_size=LARGE_BATCH)
def billing_mail(events: list[DomainEvent]) -> None:
    """Invoice e-mail, receipt, payment alert, dunning reminder (urgency grows with the level) — a bill run's
    worth at a time. Billing's payloads carry the name and address, so only preferences are looked up."""
    prefs = dict(
        Recipient.objects.filter(pk__in={e.payload["customer_id"] for e in events}).values_list("pk", "essential_only")
    )
    items = []
    for event in events:
        template, build = BILLING_MAIL[event.event_type]
        p = event.payload
        items.append(
            dict(
                template=template,
                email=p["customer_email"],
                customer_id=p["customer_id"],
                cause_event_id=event.event_id,
                cause_event_type=event.event_type,
                context={"name": p["customer_name"], "site_url": settings.SITE_URL, **build(p)},
                essential_only=bool(prefs.get(uuid.UUID(p["customer_id"]))),
                test_clock_id=event.test_clock_id,
                at=event.occurred_on,
            )
        )
    mail.queue_many(items)


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
        owner = event.payload.get("customer_id")
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

"""E-mail: which template each reaction uses, rendering, and sending through Django's backends.

A notification is logged (queued) inside the handler's transaction — at most one per
event and template — and sent right after that transaction commits, so a rolled
back handler sends nothing. The Message-ID is the log row's id, so a provider or
reader can recognise the rare resend after a crash between send and log update.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from notifications import events as ev
from notifications.models import Notification, NotificationStatus, Suppression
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.correlation import Cause, new_correlation_id
from sharedkernel.eventstore import append_batch


@dataclass(frozen=True)
class Template:
    name: str
    subject: str
    essential: bool  #: essential mail (money, account) goes even to those who opted out of the rest


TEMPLATES = {
    t.name: t
    for t in [
        Template("welcome", "Welcome to SubscriptionHub, {name}", True),
        Template("invoice", "Invoice {number} — {amount_due}", True),
        Template("receipt", "Receipt for invoice {invoice_number} — {amount}", True),
        Template("payment_failed", "Your payment of {amount} did not go through", True),
        Template("dunning", "{urgency}: invoice {invoice_number} is unpaid", True),
        Template("cancelled", "Your {plan_name} subscription is cancelled", True),
        Template("trial_ended", "Your {plan_name} trial has ended", False),
        Template("trial_reminder", "Your {plan_name} trial ends in {days_left} days", False),
        Template("webhook_disabled", "We stopped sending webhooks to {url}", True),
    ]
}


def render(template: str, context: dict) -> tuple[str, str, str]:
    """(subject, text, html) of a template with ``context``."""
    spec = TEMPLATES[template]
    subject = spec.subject.format_map(_Blank(context))
    text = render_to_string(f"notifications/email/{template}.txt", context)
    html = render_to_string(f"notifications/email/{template}.html", {**context, "subject": subject})
    return subject, text, html


class _Blank(dict):
    def __missing__(self, key):
        return ""


def queue(
    *,
    template: str,
    email: str,
    customer_id,
    cause_event_id,
    cause_event_type: str,
    context: dict,
    essential_only: bool,
    test_clock_id=None,
) -> Notification | None:
    """Log one e-mail for the event that caused it; returns None when it was queued before."""
    spec = TEMPLATES[template]
    if Notification.objects.filter(cause_event_id=cause_event_id, template=template).exists():
        return None
    status = NotificationStatus.QUEUED
    reason = ""
    if not spec.essential and essential_only:
        status, reason = NotificationStatus.SUPPRESSED, "The customer receives essential mail only."
    elif not spec.essential and Suppression.objects.filter(email__iexact=email).exists():
        status, reason = NotificationStatus.SUPPRESSED, "The address bounced before."
    note = Notification.objects.create(
        customer_id=customer_id,
        email=email,
        template=template,
        essential=spec.essential,
        cause_event_id=cause_event_id,
        cause_event_type=cause_event_type,
        context=context,
        subject=render(template, context)[0],
        status=status,
        error=reason,
        created_at=timezone.now(),
        test_clock_id=test_clock_id,
    )
    if status == NotificationStatus.QUEUED:
        transaction.on_commit(lambda: send(note.pk))
    return note


def send(notification_id) -> bool:
    """Send a queued notification (after its transaction committed); log the outcome."""
    with transaction.atomic():
        note = (
            Notification.objects.select_for_update(skip_locked=True)
            .filter(pk=notification_id, status__in=[NotificationStatus.QUEUED, NotificationStatus.FAILED])
            .first()
        )
        if note is None:
            return False
        subject, text, html = render(note.template, note.context)
        message = EmailMultiAlternatives(
            subject,
            text,
            settings.DEFAULT_FROM_EMAIL,
            [note.email],
            headers={"Message-ID": note.message_id, "X-SubscriptionHub-Template": note.template},
            connection=get_connection(),
        )
        message.attach_alternative(html, "text/html")
        note.attempts += 1
        try:
            message.send()
        except Exception as exc:
            note.status, note.error = NotificationStatus.FAILED, f"{type(exc).__name__}: {exc}"[:1000]
            note.save(update_fields=["status", "error", "attempts"])
            return False
        note.status, note.error, note.sent_at = NotificationStatus.SENT, "", timezone.now()
        note.save(update_fields=["status", "error", "attempts", "sent_at"])
        clock = str(note.test_clock_id) if note.test_clock_id else None
        append_batch(
            [
                (
                    Cause(new_correlation_id(), str(note.cause_event_id), clock),
                    [
                        RecordedEvent(
                            ev.EmailSent(
                                notification_id=str(note.pk),
                                customer_id=str(note.customer_id) if note.customer_id else None,
                                email=note.email,
                                template=note.template,
                                cause_event_id=str(note.cause_event_id),
                                subject=subject,
                            ),
                            note.sent_at,
                            "Notification",
                            str(note.pk),
                            1,
                            clock,
                        )
                    ],
                )
            ]
        )
        return True

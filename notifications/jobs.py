"""Time-driven work of Notifications.

notifications.send_reminders   trial-ending reminders whose time has come
notifications.retry_webhooks   webhook deliveries whose next attempt is due (backoff over ~3 days), and
                               new ones whose first attempt never happened (the process died after commit)
notifications.retry_mail       e-mails no live sender holds: never sent (a crash), the rest of a crashed
                               sender's batch, refused ones due for a retry — batch after batch
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Min, Q, QuerySet

from notifications import mail, webhooks
from notifications.models import Notification, Recipient, Reminder, WebhookDelivery, WebhookDeliveryStatus
from sharedkernel.bus import LARGE_BATCH
from sharedkernel.scheduling import in_scope, scheduled_job


def _reminders(scope):
    return in_scope(Reminder.objects.filter(sent_at__isnull=True, cancelled_at__isnull=True), scope)


@scheduled_job("notifications.send_reminders", next_due=lambda s: _reminders(s).aggregate(at=Min("send_at"))["at"])
def send_reminders(now: datetime, test_clock_id: str | None) -> int:
    sent = 0
    for reminder in _reminders(test_clock_id).filter(send_at__lte=now)[:500]:
        recipient = Recipient.objects.filter(pk=reminder.customer_id).first()
        if recipient is not None:
            days = max(1, math.ceil((reminder.trial_end - now) / timedelta(days=1)))
            mail.queue(
                template="trial_reminder",
                email=recipient.email,
                customer_id=recipient.customer_id,
                cause_event_id=reminder.pk,
                cause_event_type="notifications.ReminderScheduled",
                context={
                    "name": recipient.name,
                    "plan_name": reminder.plan_name,
                    "days_left": days,
                    "trial_end": reminder.trial_end.strftime("%B %-d, %Y"),
                    "payment_method_url": f"{settings.SITE_URL}/billing/payment-method/",
                },
                essential_only=recipient.essential_only,
                at=now,
                test_clock_id=reminder.test_clock_id,
            )
        Reminder.objects.filter(pk=reminder.pk).update(sent_at=now)
        sent += 1
    return sent


def _webhooks(scope):
    """Deliveries waiting for a retry, and new ones whose first attempt never happened."""
    return in_scope(
        WebhookDelivery.objects.filter(
            status__in=[WebhookDeliveryStatus.PENDING, WebhookDeliveryStatus.RETRYING], next_attempt_at__isnull=False
        ),
        scope,
    )


@scheduled_job(
    "notifications.retry_webhooks", next_due=lambda s: _webhooks(s).aggregate(at=Min("next_attempt_at"))["at"]
)
def retry_webhooks(now: datetime, test_clock_id: str | None) -> int:
    due = list(_webhooks(test_clock_id).filter(next_attempt_at__lte=now).values_list("pk", flat=True)[:500])
    for pk in due:
        webhooks.attempt(pk, now=now, due_only=True)
    return len(due)


def _due_mail(now: datetime) -> QuerySet:
    """Mail no live sender holds, in real time whatever clock the customer is on (mail servers live in real
    time): never taken (its process died before sending, or a crashed sender never reached it), held by a
    sender whose hold ran out (it died), or refused and due for its next try."""
    return Notification.objects.filter(status__in=mail.UNSENT, attempts__lt=mail.MAX_ATTEMPTS).filter(
        Q(held_until__isnull=True) | Q(held_until__lte=now)
    )


#: One run drains batch after batch for up to this long (beat starts the next a few seconds later).
DRAIN_SECONDS = 8


# Never due on a test clock: its advance does not wait on a mail server, and beat runs it every 10 s.
@scheduled_job("notifications.retry_mail", next_due=lambda s: None)
def retry_mail(now: datetime, test_clock_id: str | None) -> int:
    """The backlog, at the pace of a bill run: EmailSent owed by dead senders, then batch after batch of
    due mail over one connection each, until none is due. Run by beat in real time only (a test clock's
    advance does not wait on a mail server)."""
    if test_clock_id:
        return 0
    handled = mail.record_owed_sent_events(now)
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        ids = list(_due_mail(now).order_by("created_at", "pk").values_list("pk", flat=True)[:LARGE_BATCH])
        if not ids:
            break
        outcome = mail.send_backlog(ids, now=now)
        handled += outcome.sent
        if not outcome.taken:  # all of them held by someone else this instant: theirs to send
            break
    return handled

"""Time-driven work of Notifications.

notifications.send_reminders   trial-ending reminders whose time has come
notifications.retry_webhooks   webhook deliveries whose next attempt is due (backoff over ~3 days), and
                               new ones whose first attempt never happened (the process died after commit)
notifications.retry_mail       e-mails the SMTP server refused or never got (a few tries)
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Min, Q, QuerySet

from notifications import mail, webhooks
from notifications.models import DeliveryStatus, Notification, NotificationStatus, Recipient, Reminder, WebhookDelivery
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
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], next_attempt_at__isnull=False
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


def _unsent(scope):
    return in_scope(
        Notification.objects.filter(status__in=[NotificationStatus.QUEUED, NotificationStatus.FAILED], attempts__lt=5),
        scope,
    )


def _retryable(now: datetime) -> QuerySet:
    """Mail servers live in real time, whatever clock the customer is on: real-time customers' mail
    left queued a minute (a crash after commit) or refused, and test-clock customers' refused mail
    (their created_at is on their clock, so only the failed ones are known to be idle)."""
    unsent = Notification.objects.filter(attempts__lt=5)
    return unsent.filter(
        Q(
            test_clock_id__isnull=True,
            status__in=[NotificationStatus.QUEUED, NotificationStatus.FAILED],
            created_at__lte=now - timedelta(minutes=1),
        )
        | Q(test_clock_id__isnull=False, status=NotificationStatus.FAILED)
    )


@scheduled_job(
    "notifications.retry_mail", next_due=lambda s: None if s else _unsent(s).aggregate(at=Min("created_at"))["at"]
)
def retry_mail(now: datetime, test_clock_id: str | None) -> int:
    """Run by beat in real time only (a test clock's advance does not wait on a mail server)."""
    if test_clock_id:
        return 0
    ids = list(_retryable(now).order_by("created_at").values_list("pk", flat=True)[:200])
    return sum(1 for pk in ids if mail.send(pk))

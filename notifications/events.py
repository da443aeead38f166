"""Events published by the Notifications context.

Webhook attempts are recorded as events too, but they are not public: a webhook
about a webhook would never end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sharedkernel.events import Event


@dataclass(frozen=True)
class EmailSent(Event):
    event_type = "notifications.EmailSent"
    aggregate_type = "Notification"
    aggregate_id_field = "notification_id"

    notification_id: str
    customer_id: str | None
    email: str
    template: str
    cause_event_id: str
    subject: str


@dataclass(frozen=True)
class EmailBounced(Event):
    """The provider could not deliver; non-essential mail to the address stops."""

    event_type = "notifications.EmailBounced"
    aggregate_type = "Notification"
    aggregate_id_field = "notification_id"

    notification_id: str | None
    customer_id: str | None
    email: str
    reason: str


@dataclass(frozen=True)
class ReminderScheduled(Event):
    """A trial-ending reminder will be sent at ``send_at`` (unless the trial ends otherwise first)."""

    event_type = "notifications.ReminderScheduled"
    aggregate_type = "Reminder"
    aggregate_id_field = "reminder_id"

    reminder_id: str
    customer_id: str
    subscription_id: str
    send_at: datetime


@dataclass(frozen=True)
class WebhookAttemptEvent(Event):
    """What every webhook attempt's event says first: which delivery of which event to which endpoint,
    and its attempt number. Not public (see above)."""

    aggregate_type = "WebhookDelivery"
    aggregate_id_field = "delivery_id"
    public = False

    delivery_id: str
    endpoint_id: str
    event_id: str
    attempt: int


@dataclass(frozen=True)
class WebhookDispatched(WebhookAttemptEvent):
    event_type = "notifications.WebhookDispatched"

    status_code: int
    latency_ms: int


@dataclass(frozen=True)
class WebhookFailed(WebhookAttemptEvent):
    event_type = "notifications.WebhookFailed"

    status_code: int | None
    latency_ms: int
    error: str
    next_attempt_at: datetime | None

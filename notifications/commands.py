"""Application services of the Notifications context."""

from __future__ import annotations

import uuid
from functools import partial

from django.db import transaction
from django.utils import timezone

from notifications import events as ev
from notifications import mail, webhooks
from notifications.models import (
    Notification,
    NotificationStatus,
    Recipient,
    Suppression,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)
from notifications.models.webhook import PICKUP_AFTER
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.clock import clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import current_cause
from sharedkernel.errors import InvalidInput, InvalidTransition, NotFound
from sharedkernel.events import EVENT_CLASSES
from sharedkernel.eventstore import append_batch


@command(aggregate="WebhookEndpoint", records=())
def register_endpoint(*, url: str, events: list[str], customer_id=None) -> WebhookEndpoint:
    """RegisterWebhookEndpoint: the URL must be public, the event types known and public. Records no event."""
    try:
        webhooks.check_url(url)
    except webhooks.UnsafeUrl as exc:
        raise InvalidInput(str(exc), details={"url": "not allowed"}) from None
    if events is not None and not events:
        raise InvalidInput(
            'Name the event types to receive, or ["*"] for all; an empty list would receive nothing.',
            details={"events": "empty"},
        )
    events = list(dict.fromkeys(events or ["*"]))
    unknown = [e for e in events if e != "*" and (e not in EVENT_CLASSES or not EVENT_CLASSES[e].public)]
    if unknown:
        raise InvalidInput(f"Unknown or non-public event types: {', '.join(unknown)}.", details={"events": unknown})
    if customer_id is not None and not Recipient.objects.filter(pk=customer_id).exists():
        raise InvalidInput("No such customer.", details={"customer": "does not exist"})
    return WebhookEndpoint.objects.create(url=url, events=events, customer_id=customer_id, created_at=timezone.now())


@command(aggregate="WebhookDelivery", records=())
def redeliver(*, delivery_id) -> WebhookDelivery:
    """Send a delivery again now (staff, the API, or the endpoint's owner): right after commit, or by
    the retry job PICKUP_AFTER later should that process die first. Refused for a disabled endpoint.
    Records no event."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound("No such webhook delivery.")
    if not delivery.endpoint.active:
        raise InvalidTransition("The endpoint is disabled; enable it before redelivering.")
    delivery.status = WebhookDeliveryStatus.RETRYING
    delivery.next_attempt_at = clock_for(delivery.test_clock_id).now() + PICKUP_AFTER
    delivery.save(update_fields=["status", "next_attempt_at"])
    transaction.on_commit(partial(webhooks.attempt, delivery.pk, after_attempts=delivery.attempts))
    return delivery


def _endpoint(endpoint_id) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound("No such webhook endpoint.")
    return endpoint


@command(aggregate="WebhookEndpoint", records=())
def enable_endpoint(*, endpoint_id) -> WebhookEndpoint:
    """Turn a disabled endpoint back on with a fresh failure clock (else its next failure would
    disable it again at once). Deliveries that failed meanwhile are not resent: redeliver them.
    Records no event."""
    endpoint = _endpoint(endpoint_id)
    if endpoint.active:
        raise InvalidTransition("The endpoint is already active.")
    endpoint.active, endpoint.failing_since, endpoint.disabled_at, endpoint.disabled_reason = True, None, None, ""
    endpoint.save(update_fields=["active", "failing_since", "disabled_at", "disabled_reason"])
    return endpoint


@command(aggregate="WebhookEndpoint", records=())
def disable_endpoint(*, endpoint_id, reason: str = "Disabled by its owner.") -> WebhookEndpoint:
    """Stop sending to an endpoint (nothing is queued for it while it is off). Records no event."""
    endpoint = _endpoint(endpoint_id)
    if not endpoint.active:
        raise InvalidTransition("The endpoint is already disabled.")
    endpoint.active, endpoint.disabled_at, endpoint.disabled_reason = False, timezone.now(), reason[:300]
    endpoint.save(update_fields=["active", "disabled_at", "disabled_reason"])
    return endpoint


@command(aggregate="WebhookEndpoint", records=())
def remove_endpoint(*, endpoint_id) -> None:
    """Delete an endpoint with its deliveries and their attempts. Records no event."""
    _endpoint(endpoint_id).delete()


@command(aggregate="Recipient", records=())
def set_preferences(*, customer_id, essential_only: bool) -> Recipient:
    """SetPreferences: essential mail only (or everything again) for a known recipient. Records no event."""
    recipient = Recipient.objects.filter(pk=customer_id).first()
    if recipient is None:
        raise NotFound("No such customer.")
    recipient.essential_only = essential_only
    recipient.save(update_fields=["essential_only"])
    return recipient


@command(aggregate="Notification", records=("notifications.EmailBounced",))
def record_bounce(*, email: str, reason: str, message_id: str = "") -> Notification | None:
    """RecordBounce: the e-mail provider says a message bounced: mark it, and send only essential mail there
    from now. Records EmailBounced."""
    email = (email or "").strip()
    if not email:
        raise InvalidInput("Say which address bounced.", details={"email": "required"})
    now = timezone.now()
    note = None
    ident = message_id.strip("<>").split("@", 1)[0] if message_id else ""
    try:
        note_query = Notification.objects.filter(pk=uuid.UUID(ident)) if ident else Notification.objects.none()
    except ValueError:
        note_query = Notification.objects.none()
    note = (
        note_query.first()
        or Notification.objects.filter(email__iexact=email, status="sent").order_by("-sent_at").first()
    )
    if note is not None:
        note.status, note.bounced_at, note.error = NotificationStatus.BOUNCED, now, reason[:1000]
        note.save(update_fields=["status", "bounced_at", "error"])
    Suppression.objects.update_or_create(email=email.lower(), defaults={"reason": reason[:300], "created_at": now})
    append_batch(
        [
            (
                current_cause(),
                [
                    RecordedEvent(
                        ev.EmailBounced(
                            notification_id=str(note.pk) if note else None,
                            customer_id=str(note.customer_id) if note and note.customer_id else None,
                            email=email,
                            reason=reason[:300],
                        ),
                        now,
                        "Notification",
                        str(note.pk) if note else email,
                        1,
                        None,
                    )
                ],
            )
        ]
    )
    return note


def tell_owner_endpoint_disabled(endpoint: WebhookEndpoint) -> None:
    recipient = Recipient.objects.filter(pk=endpoint.customer_id).first() if endpoint.customer_id else None
    if recipient is None:
        return
    from django.conf import settings

    mail.queue(
        template="webhook_disabled",
        email=recipient.email,
        customer_id=recipient.customer_id,
        cause_event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"disabled:{endpoint.pk}:{endpoint.disabled_at}"),
        cause_event_type="notifications.WebhookEndpointDisabled",
        context={
            "name": recipient.name,
            "url": endpoint.url,
            "reason": endpoint.disabled_reason,
            "manage_url": f"{settings.SITE_URL}/notifications/webhooks/",
        },
        essential_only=False,
    )

"""What the outside world does to Notifications, as the tests play it: the mail provider's bounces,
and a webhook endpoint that stopped answering."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from notifications import commands
from notifications.models import WebhookDelivery, WebhookEndpoint


def report_bounce(client, note, *, token: str = "bounce-secret"):
    """The provider's bounce callback for ``note``: its address refused it with "550 no such user"."""
    return client.post(
        "/api/v1/notifications-bounces/",
        {"email": note.email, "reason": "550 no such user", "message_id": note.message_id},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def dead_endpoint(customer, *, failing_for: timedelta) -> tuple[WebhookEndpoint, WebhookDelivery]:
    """An endpoint of ``customer``'s at a port nothing listens on, failing for ``failing_for`` already,
    and a delivery to it due for its next attempt now."""
    now = timezone.now()
    endpoint = commands.register_endpoint(url="http://127.0.0.1:9/dead", events=["*"], customer_id=customer.id)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=now - failing_for)
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id="6a1f5e1e-0000-4000-8000-0000000000aa",
        event_type="subscriptions.SubscriptionCreated",
        body="{}",
        created_at=now,
        status="retrying",
        next_attempt_at=now,
    )
    return endpoint, delivery

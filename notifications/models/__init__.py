"""What Notifications keeps: who to write to, what was sent, and webhook endpoints and deliveries.

All of it is built from event payloads (through ``notifications.acl``); nothing here reads another
context's tables. One module per aggregate; the models are re-exported here (the webhook timings are
``notifications.models.webhook``'s).
"""

import secrets


def new_secret() -> str:
    """A webhook endpoint's signing secret (defined here, where migration 0001 names it)."""
    return "whsec_" + secrets.token_hex(24)


# the aggregates' modules (after new_secret, which webhook.py uses)
from notifications.models.log import Notification, NotificationStatus  # noqa: E402
from notifications.models.recipient import Recipient, Suppression, recipient_needed  # noqa: E402
from notifications.models.reminder import Reminder  # noqa: E402
from notifications.models.webhook import (  # noqa: E402
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
)

__all__ = [
    "Notification",
    "NotificationStatus",
    "Recipient",
    "Reminder",
    "Suppression",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
    "WebhookEndpoint",
    "new_secret",
    "recipient_needed",
]

"""What the mail provider does to Notifications, as the tests play it."""

from __future__ import annotations


def report_bounce(client, note, *, token: str = "bounce-secret"):
    """The provider's bounce callback for ``note``: its address refused it with "550 no such user"."""
    return client.post(
        "/api/v1/notifications-bounces/",
        {"email": note.email, "reason": "550 no such user", "message_id": note.message_id},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )

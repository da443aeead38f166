"""Celery tasks of Notifications. Thin: each calls into webhooks."""

from __future__ import annotations

from celery import shared_task

from notifications import webhooks


@shared_task(name="notifications.attempt_webhook")
def attempt_webhook(delivery_id: str, after_attempts: int) -> bool:
    """A new delivery's first attempt, off the event handler that created it."""
    return webhooks.attempt(delivery_id, after_attempts=after_attempts)

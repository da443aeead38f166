"""The e-mail log: one row per e-mail an event asked for."""

from __future__ import annotations

import uuid

from django.db import models


class NotificationStatus(models.TextChoices):
    QUEUED = "queued"
    SENT = "sent"
    BOUNCED = "bounced"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class Notification(models.Model):
    """The log: one row per e-mail an event asked for (never two for one event and template)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.UUIDField(null=True, blank=True, db_index=True)
    email = models.EmailField()
    template = models.CharField(max_length=50, db_index=True)
    essential = models.BooleanField(default=True)
    cause_event_id = models.UUIDField()
    cause_event_type = models.CharField(max_length=100)
    context = models.JSONField(default=dict)
    subject = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=NotificationStatus.choices, default=NotificationStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True)
    #: Real time until which no other sender touches the row: a sender's hold while it hands the message
    #: over (renewed as it goes), then until it records EmailSent; a refused message's wait before its next
    #: try. Empty: free now. A hold past its time means the sender died; the drain job takes over.
    held_until = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["cause_event_id", "template"], name="one_mail_per_event")]

    def __str__(self) -> str:
        return f"{self.template} to {self.email} ({self.status})"

    @property
    def message_id(self) -> str:
        return f"<{self.id}@subscriptionhub>"

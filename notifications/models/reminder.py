"""Trial-ending reminders waiting for their time."""

from __future__ import annotations

import uuid

from django.db import models


class Reminder(models.Model):
    """A trial-ending reminder waiting for its time."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.UUIDField()
    subscription_id = models.UUIDField(unique=True)
    send_at = models.DateTimeField(db_index=True)
    trial_end = models.DateTimeField()
    plan_name = models.CharField(max_length=100)
    sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Trial reminder at {self.send_at:%Y-%m-%d %H:%M}"

"""Who Notifications writes to (built from CustomerRegistered and subscription events), and addresses that bounced."""

from __future__ import annotations

from django.db import models


class Recipient(models.Model):
    """A customer as Notifications knows them (from CustomerRegistered and subscription events)."""

    customer_id = models.UUIDField(primary_key=True)
    name = models.CharField(max_length=200)
    email = models.EmailField()
    plan_name = models.CharField(max_length=100, blank=True)
    user_id = models.IntegerField(null=True, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True)
    #: Preference: no reminders or other non-essential mail (receipts and invoices always go).
    essential_only = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class Suppression(models.Model):
    """An address that bounced: only essential mail is tried again."""

    email = models.EmailField(primary_key=True)
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.email


def recipient_needed(customer_id) -> str:
    """What a reaction waits for when it writes to a customer Notifications does not know yet."""
    return f"notifications recipient of customer {customer_id}"

"""The words of the Payment aggregate: its status, what started an attempt, and the refusal of a
second attempt while one is at the gateway."""

from __future__ import annotations

from django.db import models

from sharedkernel.errors import DomainError


class PaymentStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing", "Processing (a charge is at the gateway)"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptTrigger(models.TextChoices):
    INITIAL = "initial", "Invoice finalized"
    RETRY = "retry", "Scheduled retry"
    DUNNING = "dunning", "Dunning step"
    MANUAL = "manual", "Pay now"
    PAYMENT_METHOD = "payment_method", "Payment method updated"


class PaymentInProgress(DomainError):
    """An attempt of this payment is at the gateway: a second one must not start."""

    code = "payment_in_progress"

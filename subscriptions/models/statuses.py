"""The states a subscription is in, why it is suspended, and who resumes it."""

from django.db import models


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing", "Trialing"
    PENDING_PAYMENT = "pending_payment", "Pending payment"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    CANCELLED = "cancelled", "Cancelled"


LIVE_STATUSES = (
    SubscriptionStatus.TRIALING,
    SubscriptionStatus.PENDING_PAYMENT,
    SubscriptionStatus.ACTIVE,
    SubscriptionStatus.SUSPENDED,
)


class SuspensionReason(models.TextChoices):
    NON_PAYMENT = "non_payment", "Payment failed"
    NO_PAYMENT_METHOD = "no_payment_method", "Trial ended without a payment method"
    STAFF = "staff", "Paused by staff"


class ResumeInitiator(models.TextChoices):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"  # a payment succeeded, a payment method arrived

"""The states a subscription is in, why it is suspended, who resumes it, and the other words its
events say (why it was activated, what it resumed from, why a price change was dropped)."""

from django.db import models


class SubscriptionStatus(models.TextChoices):
    TRIALING = "trialing"
    PENDING_PAYMENT = "pending_payment", "Pending payment"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"


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


class ActivationReason(models.TextChoices):
    """SubscriptionActivated's ``reason``."""

    FIRST_PAYMENT = "first_payment"  #: its first invoice was paid (already billed)
    TRIAL_CONVERTED = "trial_converted"  #: the trial ended with a payment method (bill the first period now)


class ResumedFrom(models.TextChoices):
    """SubscriptionResumed's ``resumed_from``."""

    SUSPENDED = "suspended"
    SCHEDULED_CANCELLATION = "scheduled_cancellation"


class PriceChangeDropped(models.TextChoices):
    """PriceChangeCancelled's ``reason``: why a scheduled price change will not happen."""

    CANCELLED = "cancelled"  #: the subscription was cancelled first
    PLAN_CHANGED = "plan_changed"
    MIGRATION_CANCELLED = "migration_cancelled"

"""Value objects of the Billing context and the domain types its ports return (no Django)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypedDict

from sharedkernel.values import Money


class LineKind(StrEnum):
    PLAN = "plan"
    PRORATION = "proration"
    USAGE = "usage"
    CREDIT = "credit"
    DISCOUNT = "discount"
    TAX = "tax"


class SubscriptionState(StrEnum):
    """The words of Subscriptions' status Billing acts on (BilledSubscription.status keeps the word as
    published; billing/acl/subscriptions.py reads it)."""

    TRIALING = "trialing"
    PENDING_PAYMENT = "pending_payment"
    CANCELLED = "cancelled"


class BillingReason(StrEnum):
    SUBSCRIPTION_CREATE = "subscription_create"
    SUBSCRIPTION_CYCLE = "subscription_cycle"
    SUBSCRIPTION_UPDATE = "subscription_update"
    SUBSCRIPTION_RESUME = "subscription_resume"
    SUBSCRIPTION_CANCEL = "subscription_cancel"
    MANUAL = "manual"

    @property
    def label(self) -> str:
        return {
            "subscription_create": "First invoice",
            "subscription_cycle": "Renewal",
            "subscription_update": "Plan change",
            "subscription_resume": "Resumed subscription",
            "subscription_cancel": "Final invoice",
            "manual": "Manual invoice",
        }[self.value]

    @property
    def recurring(self) -> bool:
        """Invoices for a subscription's period: at most one per (subscription, period)."""
        return self in (
            BillingReason.SUBSCRIPTION_CREATE,
            BillingReason.SUBSCRIPTION_CYCLE,
            BillingReason.SUBSCRIPTION_RESUME,
        )


@dataclass(frozen=True, slots=True)
class LineDraft:
    """A line to put on an invoice."""

    kind: LineKind
    description: str
    amount: Money
    quantity: int | None = None
    metric: str | None = None


@dataclass(frozen=True, slots=True)
class InvoicePeriod:
    """What an invoice covers. Unlike a subscription period it may be partial (proration)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("An invoice period ends after it starts.")

    def label(self) -> str:
        return f"{self.start:%b %-d, %Y} – {self.end:%b %-d, %Y}"


# -- payments ------------------------------------------------------------------------


class PaymentOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    ERROR = "error"  # the gateway failed; worth retrying


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What the PaymentGateway port answers, in our words (never Stripe's types)."""

    outcome: PaymentOutcome
    reference: str = ""
    failure_code: str = ""
    failure_message: str = ""
    raw: dict = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.outcome is PaymentOutcome.SUCCEEDED

    @property
    def transient(self) -> bool:
        return self.outcome is PaymentOutcome.ERROR


@dataclass(frozen=True, slots=True)
class RefundResult:
    succeeded: bool
    reference: str = ""
    failure_message: str = ""
    raw: dict = field(default_factory=dict)


class AccountHolder(TypedDict):
    """Who an account is opened for, as Subscriptions registered the customer (CustomerRegistered,
    read by billing/acl): the keywords of ``BillingAccount.open`` and of the ``open_account`` command,
    all required."""

    customer_id: str
    name: str
    email: str
    currency: str
    country: str
    region: str
    tax_exempt: bool
    user_id: int | None
    test_clock_id: str | None


@dataclass(frozen=True, slots=True)
class PaymentMethodInfo:
    token: str
    brand: str
    last4: str

    @property
    def label(self) -> str:
        return f"{self.brand} •••• {self.last4}"


class InvalidPaymentMethod(ValueError):
    """The gateway does not know this payment method token."""


class GatewayNoAnswer(Exception):
    """The gateway could not be reached, so whether it charged is unknown: the attempt stays in flight
    and is asked again with the same idempotency key — never recorded as failed and charged anew."""


# -- tax -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    country: str
    region: str = ""

    def __str__(self) -> str:
        return f"{self.country}-{self.region}" if self.region else self.country


@dataclass(frozen=True, slots=True)
class TaxCalculation:
    """What the TaxCalculator port answers."""

    rate: Decimal
    tax: Money
    jurisdiction: str
    name: str
    exempt: bool = False
    exempt_reason: str = ""

    def describe(self) -> str:
        """The tax line's text, the same on an invoice and on the next-invoice preview: "TVA (20 %)"."""
        if self.exempt:
            return f"Tax exempt — {self.exempt_reason}"
        return f"{self.name} ({self.rate * 100:.3f}".rstrip("0").rstrip(".") + " %)"


class TaxUnavailable(Exception):
    """The tax calculator could not answer. Never replaced by a made-up rate."""


# -- dunning -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DunningPlan:
    """When to retry a failed payment and when to escalate.

    ``retry_offsets``: after the first failure (default +1 h, +24 h, +72 h).
    ``escalation_offsets``: after dunning starts; every step but the last is a
    DunningEscalated (with one more charge attempt), the last one is DunningExhausted.
    """

    retry_offsets: tuple[timedelta, ...]
    escalation_offsets: tuple[timedelta, ...]

    def __post_init__(self) -> None:
        for name, offsets in (("retry", self.retry_offsets), ("escalation", self.escalation_offsets)):
            if any(o <= timedelta(0) for o in offsets) or list(offsets) != sorted(offsets):
                raise ValueError(f"{name} offsets must be positive and increasing.")
        if not self.escalation_offsets:
            raise ValueError("Dunning needs at least one step.")

    def next_retry(self, first_failure: datetime, failures_so_far: int) -> datetime | None:
        """After ``failures_so_far`` failed attempts, when is the next retry (None: start dunning)?"""
        index = failures_so_far - 1
        return first_failure + self.retry_offsets[index] if 0 <= index < len(self.retry_offsets) else None

    def step_at(self, dunning_started: datetime, level: int) -> datetime | None:
        """When step ``level`` (1-based) of dunning is due (None: there is no such step)."""
        return (
            dunning_started + self.escalation_offsets[level - 1] if 1 <= level <= len(self.escalation_offsets) else None
        )

    @property
    def steps(self) -> int:
        return len(self.escalation_offsets)


@dataclass(frozen=True, slots=True)
class PlanChangeOutlook:
    """Subscriptions' answer to "may this subscription change to that plan now?", as Billing's
    plan-change page needs it: refused (a code and why), waiting for approval, or allowed."""

    refused_code: str = ""
    message: str = ""
    needs_approval: bool = False

    @property
    def refused(self) -> bool:
        return bool(self.refused_code)

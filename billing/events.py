"""Events published by the Billing context — its published language.

Payload fields as consumers receive them in JSON: Money is
``{"amount": "49.99", "currency": "USD"}`` (exact minor digits), times are
ISO 8601 UTC, ids are UUID strings, rates are decimal strings.

Events a person hears about (invoice, receipt, payment alert, dunning reminder,
refund) carry ``customer_name``, ``customer_email`` and ``plan_name`` so
Notifications never has to ask. ``subscription_id`` is null for invoices that
belong to no subscription.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sharedkernel.events import Event
from sharedkernel.values import Money


@dataclass(frozen=True)
class InvoiceLineRef:
    description: str
    kind: str  #: plan | proration | usage | credit | discount | tax
    amount: Money
    quantity: int | None = None
    metric: str | None = None


@dataclass(frozen=True)
class PeriodRef:
    start: datetime
    end: datetime


# -- accounts ----------------------------------------------------------------------


@dataclass(frozen=True)
class AccountEvent(Event):
    aggregate_type = "BillingAccount"
    aggregate_id_field = "customer_id"

    customer_id: str


@dataclass(frozen=True)
class BillingAccountOpened(AccountEvent):
    """Billing knows the customer (from CustomerRegistered) and can invoice them."""

    event_type = "billing.BillingAccountOpened"
    public = False

    currency: str
    country: str
    region: str
    tax_exempt: bool


@dataclass(frozen=True)
class PaymentMethodUpdated(AccountEvent):
    """The customer's payment method changed. Subscriptions resumes trials that
    ended without one; Billing retries failed payments at once."""

    event_type = "billing.PaymentMethodUpdated"

    has_payment_method: bool
    brand: str  #: e.g. visa ("" when removed)
    last4: str


@dataclass(frozen=True)
class CreditApplied(AccountEvent):
    """Credit was added to the customer's balance; it pays down their next invoices.

    ``source``: grant (staff), proration (a downgrade's unused time)."""

    event_type = "billing.CreditApplied"

    amount: Money
    balance: Money  #: balance in this currency after the credit
    reason: str
    source: str
    subscription_id: str | None = None


@dataclass(frozen=True)
class CouponRedeemed(AccountEvent):
    """A coupon now discounts a subscription's invoices.

    ``duration``: once | repeating (for ``duration_in_periods``) | forever."""

    event_type = "billing.CouponRedeemed"

    subscription_id: str
    coupon_code: str
    duration: str
    duration_in_periods: int | None
    percent_off: Decimal | None = None
    amount_off: Money | None = None


# -- invoices ----------------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceEvent(Event):
    aggregate_type = "Invoice"
    aggregate_id_field = "invoice_id"

    invoice_id: str


@dataclass(frozen=True)
class InvoiceGenerated(InvoiceEvent):
    """A draft invoice with its lines. Tax comes next, then finalisation.

    ``billing_reason``: subscription_create | subscription_cycle |
    subscription_update (proration) | subscription_resume | subscription_cancel
    (final) | manual."""

    event_type = "billing.InvoiceGenerated"

    customer_id: str
    subscription_id: str | None
    billing_reason: str
    currency: str
    lines: list[InvoiceLineRef]
    subtotal: Money  #: charges minus discounts, before tax
    period: PeriodRef | None = None


@dataclass(frozen=True)
class InvoiceLineItemAdded(InvoiceEvent):
    """A line was added to a draft after it was generated (late usage, a coupon)."""

    event_type = "billing.InvoiceLineItemAdded"

    customer_id: str
    subscription_id: str | None
    line: InvoiceLineRef
    subtotal: Money


@dataclass(frozen=True)
class TaxCalculated(InvoiceEvent):
    """Tax of a draft invoice is known (zero with a reason when exempt)."""

    event_type = "billing.TaxCalculated"

    customer_id: str
    subscription_id: str | None
    taxable_amount: Money
    tax: Money
    rate: Decimal  #: e.g. 0.0725
    jurisdiction: str  #: country[-region], e.g. US-CA
    tax_name: str
    exempt: bool
    exempt_reason: str = ""


@dataclass(frozen=True)
class TaxCalculationFailed(InvoiceEvent):
    """The tax calculator could not answer; the invoice stays a draft and is retried."""

    event_type = "billing.TaxCalculationFailed"
    public = False

    customer_id: str
    error: str
    attempt: int
    next_attempt_at: datetime


@dataclass(frozen=True)
class InvoiceFinalized(InvoiceEvent):
    """The invoice has its number and is payable; nothing on it changes any more."""

    event_type = "billing.InvoiceFinalized"

    number: str
    customer_id: str
    customer_name: str
    customer_email: str
    subscription_id: str | None
    plan_name: str | None
    billing_reason: str
    currency: str
    lines: list[InvoiceLineRef]
    subtotal: Money
    tax: Money
    total: Money
    credit_applied: Money  #: paid from the customer's credit balance
    amount_due: Money  #: what will be charged
    issued_at: datetime
    url: str  #: the customer's page for this invoice
    period: PeriodRef | None = None


@dataclass(frozen=True)
class InvoicePaid(InvoiceEvent):
    event_type = "billing.InvoicePaid"

    number: str
    customer_id: str
    subscription_id: str | None
    amount_paid: Money
    paid_at: datetime


@dataclass(frozen=True)
class InvoiceVoided(InvoiceEvent):
    """The invoice is cancelled; it will not be collected."""

    event_type = "billing.InvoiceVoided"

    number: str | None
    customer_id: str
    subscription_id: str | None
    reason: str
    voided_at: datetime


# -- payments ----------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentEvent(Event):
    aggregate_type = "Payment"
    aggregate_id_field = "payment_id"

    payment_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    subscription_id: str | None
    amount: Money


@dataclass(frozen=True)
class PaymentNotice(PaymentEvent):
    """A payment event a person hears about (receipt, payment alert, dunning reminder): it names them.

    RefundIssued names them too, but after its ``refund_id``; published in that order, it stays a PaymentEvent."""

    customer_name: str
    customer_email: str
    plan_name: str | None


@dataclass(frozen=True)
class PaymentAttempted(PaymentEvent):
    """A charge was sent to the payment gateway (attempt 1, 2, …)."""

    event_type = "billing.PaymentAttempted"

    attempt: int
    payment_method: str  #: e.g. "visa •••• 4242", or "account credit"


@dataclass(frozen=True)
class PaymentSucceeded(PaymentNotice):
    """The charge was approved. Subscriptions activates or resumes on it."""

    event_type = "billing.PaymentSucceeded"

    billing_reason: str
    attempt: int
    paid_at: datetime
    gateway_reference: str


@dataclass(frozen=True)
class PaymentFailed(PaymentNotice):
    """The charge was declined (or the gateway failed). ``next_retry_at`` is when
    Billing tries again (null once retries are used up and dunning starts)."""

    event_type = "billing.PaymentFailed"

    attempt: int
    failure_code: str
    failure_message: str
    transient: bool  #: a gateway error rather than a decline
    next_retry_at: datetime | None
    update_payment_method_url: str


@dataclass(frozen=True)
class RefundIssued(PaymentEvent):
    """Money went back to the customer; ``amount`` is this refund."""

    event_type = "billing.RefundIssued"

    refund_id: str
    customer_name: str
    customer_email: str
    plan_name: str | None
    reason: str
    total_refunded: Money
    credit_note_number: str
    refunded_at: datetime


@dataclass(frozen=True)
class DunningStarted(PaymentEvent):
    """Retries are used up; the escalating reminder sequence begins."""

    event_type = "billing.DunningStarted"

    started_at: datetime
    next_step_at: datetime


@dataclass(frozen=True)
class DunningEscalated(PaymentNotice):
    """Dunning reached ``level`` (1, 2, …); ``final`` is the last warning."""

    event_type = "billing.DunningEscalated"

    level: int
    final: bool
    next_step_at: datetime | None
    update_payment_method_url: str


@dataclass(frozen=True)
class DunningExhausted(PaymentEvent):
    """Every retry and reminder failed. Subscriptions suspends the subscription."""

    event_type = "billing.DunningExhausted"

    exhausted_at: datetime

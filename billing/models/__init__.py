from billing.models.accounts import (
    BilledSubscription,
    BillingAccount,
    BillingPlan,
    CreditEntry,
    CurrencyMismatch,
)
from billing.models.attempts import PaymentAttempt
from billing.models.config import DunningSchedule, Sequence, TaxRate
from billing.models.coupons import Coupon, CouponNotApplicable, Discount
from billing.models.invoice_lines import InvoiceLine
from billing.models.invoices import Invoice, InvoiceStatus, NothingToInvoice
from billing.models.payment_states import AttemptTrigger, PaymentInProgress, PaymentStatus
from billing.models.payments import DunningQueue, Payment
from billing.models.refunds import Refund, RefundInProgress, RefundTooLarge

__all__ = [
    "AttemptTrigger",
    "BilledSubscription",
    "BillingAccount",
    "BillingPlan",
    "Coupon",
    "CouponNotApplicable",
    "CreditEntry",
    "CurrencyMismatch",
    "Discount",
    "DunningQueue",
    "DunningSchedule",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "NothingToInvoice",
    "Payment",
    "PaymentAttempt",
    "PaymentInProgress",
    "PaymentStatus",
    "Refund",
    "RefundInProgress",
    "RefundTooLarge",
    "Sequence",
    "TaxRate",
]

from billing.models.accounts import (
    BilledSubscription,
    BillingAccount,
    BillingPlan,
    CreditEntry,
    CurrencyMismatch,
)
from billing.models.config import DunningSchedule, Sequence, TaxRate
from billing.models.coupons import Coupon, CouponNotApplicable, Discount
from billing.models.invoices import Invoice, InvoiceLine, InvoiceStatus, NothingToInvoice
from billing.models.payments import (
    AttemptTrigger,
    DunningQueue,
    Payment,
    PaymentAttempt,
    PaymentInProgress,
    PaymentStatus,
    Refund,
    RefundInProgress,
    RefundTooLarge,
)

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

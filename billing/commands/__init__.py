"""Application services of the Billing context, one module per aggregate.

Single commands (an API call, a page, the admin) and the bulk steps of the
invoice pipeline share one code path: the ``*_many`` functions take a batch,
lock its rows, call the aggregate method on each, and write everything with a
:class:`~billing.commands.unit_of_work.UnitOfWork` — bulk inserts/updates and
one event append — so a bill run costs a handful of queries per batch rather
than per subscription. The invariants stay in the aggregate methods (models/).

    accounts.py      OpenBillingAccount, UpdatePaymentMethod, ApplyCredit (staff)
    invoices.py      GenerateInvoice (single or a bill run's worth), VoidInvoice
    pipeline.py      usage onto the renewal invoice, CalculateTax, FinalizeInvoice, mark paid
    payments.py      ProcessPayment, RetryPayment, pay now, the gateway call and its resolver
    refunds.py       IssueRefund
    proration.py     GenerateProratedInvoice / ApplyCredit for a plan change
    coupons.py       RedeemCoupon
    unit_of_work.py  UnitOfWork, Work

No gateway or tax call happens inside a transaction (DESIGN.md rule 7): the
intent is recorded and committed, the outside is called with an idempotency
key derived from the intent (invoice + attempt), and the answer is recorded in
a new transaction — see payments.py, ``calculate_tax_many`` and refunds.py.

Read models and previews are in billing/queries.py.
"""

from billing.commands.accounts import grant_credit, open_account, update_payment_method
from billing.commands.coupons import CouponNotApplicable, apply_coupon
from billing.commands.invoices import InvoiceRequest, generate_invoices, plan_line, void_invoice, void_many
from billing.commands.payments import (
    charge_in_flight,
    collect_many,
    pay_invoice,
    resolve_stale_charges,
    retry_after_new_payment_method,
    retry_many,
)
from billing.commands.pipeline import (
    TAX_RETRY_BACKOFF,
    await_tax,
    bill_usage_many,
    calculate_tax_many,
    finalize_many,
    mark_paid_many,
    usage_lines,
)
from billing.commands.proration import prorate_change
from billing.commands.refunds import RefundFailed, refund_payment
from billing.commands.unit_of_work import UnitOfWork, Work, new_cause_for

__all__ = [
    "TAX_RETRY_BACKOFF",
    "CouponNotApplicable",
    "InvoiceRequest",
    "RefundFailed",
    "UnitOfWork",
    "Work",
    "apply_coupon",
    "await_tax",
    "bill_usage_many",
    "calculate_tax_many",
    "charge_in_flight",
    "collect_many",
    "finalize_many",
    "generate_invoices",
    "grant_credit",
    "mark_paid_many",
    "new_cause_for",
    "open_account",
    "pay_invoice",
    "plan_line",
    "prorate_change",
    "refund_payment",
    "resolve_stale_charges",
    "retry_after_new_payment_method",
    "retry_many",
    "update_payment_method",
    "usage_lines",
    "void_invoice",
    "void_many",
]

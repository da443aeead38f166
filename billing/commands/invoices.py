"""Commands on the Invoice aggregate: GenerateInvoice (one or a bill run's worth) and VoidInvoice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from billing.commands.accounts import credit_account, load_accounts
from billing.commands.unit_of_work import UnitOfWork, Work, single_work
from billing.models import (
    CreditEntry,
    Discount,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
)
from billing.values import (
    BillingReason,
    InvoicePeriod,
    LineDraft,
    LineKind,
)
from sharedkernel.bulk import bulk_update_rows
from sharedkernel.bus import arrived
from sharedkernel.clock import Clock
from sharedkernel.commands import command
from sharedkernel.correlation import Cause
from sharedkernel.errors import InvalidInput, InvalidTransition, NotFound
from sharedkernel.values import Money


def first_invoice_needed(subscription_id) -> str:
    """What a cancellation before the first payment waits for until the subscription's first invoice
    exists (:func:`generate_invoices` says it arrived)."""
    return f"first invoice of subscription {subscription_id}"


def renewal_invoice_needed(subscription_id, period_start: datetime) -> str:
    """What a closed period's usage waits for until the renewal invoice of the period after it exists
    (:func:`generate_invoices` says it arrived)."""
    return f"renewal invoice of subscription {subscription_id} from {period_start.astimezone(UTC).isoformat()}"


# -- invoices: generate -----------------------------------------------------------------


@dataclass(frozen=True)
class InvoiceRequest:
    """GenerateInvoice for a subscription."""

    customer_id: str
    subscription_id: str | None
    plan_name: str
    currency: str
    reason: BillingReason
    lines: tuple[LineDraft, ...]
    at: datetime
    cause: Cause
    period: InvoicePeriod | None = None
    awaiting_usage: bool = False


def plan_line(plan_name: str, price: Money, period: InvoicePeriod, version: int = 1) -> LineDraft:
    """The plan line; a plan revised since its first version names the version billed."""
    name = f"{plan_name}, version {version}" if version > 1 else plan_name
    return LineDraft(LineKind.PLAN, f"{name} ({period.label()})", price)


@command(
    aggregate="Invoice",
    records=("billing.InvoiceGenerated", "billing.InvoiceLineItemAdded"),
    name="billing.generate_invoices",
    own_transaction=False,
)
def generate_invoices(requests: list[InvoiceRequest]) -> list[Invoice]:
    """Draft invoices (a bill run's worth at once). A (subscription, period) already
    invoiced is skipped; the unique constraint backs this up against a concurrent run. What waited
    for a first or a renewal invoice (:func:`first_invoice_needed`, :func:`renewal_invoice_needed`)
    is handled once these commit.

    Records billing.InvoiceGenerated, billing.InvoiceLineItemAdded."""
    if not requests:
        return []
    accounts = load_accounts(r.customer_id for r in requests)
    missing = {r.customer_id for r in requests} - accounts.keys()
    if missing:  # a policy waits for the account first (account_needed)
        raise NotFound(f"No billing account yet for {sorted(missing)[:3]}")
    recurring = [r for r in requests if r.reason.recurring and r.subscription_id and r.period]
    done = set(
        Invoice.objects.filter(
            subscription_id__in={r.subscription_id for r in recurring},
            billing_reason__in=[b.value for b in BillingReason if b.recurring],
        ).values_list("subscription_id", "period_start")
    )
    done = {(str(s), p) for s, p in done}
    discounts = {
        str(d.subscription_id): d
        for d in Discount.objects.select_related("coupon").filter(
            subscription_id__in={r.subscription_id for r in recurring}
        )
    }
    uow = UnitOfWork()
    invoices, consumed = [], []
    for request in requests:
        key = (str(request.subscription_id), request.period.start if request.period else None)
        if request.reason.recurring and key in done:
            continue
        done.add(key)
        lines = list(request.lines)
        discount = discounts.get(str(request.subscription_id)) if request.reason.recurring else None
        if discount is not None:
            plan_total = Money.total((line.amount for line in lines if line.kind == LineKind.PLAN), request.currency)
            line = discount.consume(plan_total)
            if line is not None:
                lines.append(line)
                if discount.limited:
                    consumed.append(discount)
        account = accounts[request.customer_id]
        invoice = Invoice.draft(
            customer_id=request.customer_id,
            customer_name=account.name,
            customer_email=account.email,
            currency=request.currency,
            billing_reason=request.reason,
            lines=lines,
            at=request.at,
            subscription_id=request.subscription_id,
            plan_name=request.plan_name,
            period=request.period,
            test_clock_id=account.test_clock_id,
            awaiting_usage=request.awaiting_usage,
        )
        uow.add(invoice, request.cause)
        invoices.append(invoice)
    uow.commit()
    if consumed:
        bulk_update_rows(consumed, ["periods_remaining"])
    arrived(
        [
            first_invoice_needed(i.subscription_id)
            for i in invoices
            if i.subscription_id and i.billing_reason == BillingReason.SUBSCRIPTION_CREATE
        ]
        + [renewal_invoice_needed(i.subscription_id, i.period_start) for i in invoices if i.awaiting_usage]
    )
    return invoices


# -- void, refund ----------------------------------------------------------------------


@command(
    aggregate="Invoice",
    records=("billing.InvoiceVoided", "billing.CreditApplied"),
    name="billing.void_invoices",
    own_transaction=False,
)
def void_many(work: list[Work], *, reason: str) -> int:
    """VoidInvoice: collection stops; credit the invoice used goes back to the balance.

    Records billing.InvoiceVoided, billing.CreditApplied."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.select_for_update()
        .filter(pk__in=items.keys(), status__in=[InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED])
        .order_by("pk")
    )
    payments = {
        str(p.invoice_id): p
        for p in Payment.objects.select_for_update().filter(invoice_id__in=[i.id for i in invoices]).order_by("pk")
    }
    accounts = load_accounts((i.customer_id for i in invoices if i.credit_applied.is_positive()), lock=True)
    uow = UnitOfWork()
    for invoice in invoices:
        item = items[str(invoice.id)]
        invoice.void(reason=reason, at=item.at)
        uow.touch(invoice, item.cause)
        payment = payments.get(str(invoice.id))
        if payment is not None and payment.status != PaymentStatus.SUCCEEDED:
            payment.cancel(at=item.at)
            uow.touch(payment, item.cause)
        if invoice.credit_applied.is_positive():
            credit_account(
                uow,
                accounts[str(invoice.customer_id)],
                invoice.credit_applied,
                reason=f"Credit returned from voided invoice {invoice}",
                source=CreditEntry.Source.GRANT,
                at=item.at,
                cause=item.cause,
                invoice_id=invoice.id,
            )
    uow.commit()
    return len(invoices)


@command(aggregate="Invoice", records=("billing.InvoiceVoided",))
def void_invoice(*, invoice_id: str, reason: str, clock: Clock | None = None) -> Invoice:
    """VoidInvoice (staff, API): a draft or an unpaid invoice, with a reason (see :func:`void_many`).

    Records billing.InvoiceVoided (and billing.CreditApplied through void_many when credit goes back)."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    if not (reason or "").strip():
        raise InvalidInput("Say why the invoice is voided.", details={"reason": "required"})
    if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED):
        raise InvalidTransition(
            f"Invoice {invoice} is {invoice.status}; only a draft or an unpaid invoice can be voided."
        )
    void_many(single_work(invoice.id, clock, invoice.test_clock_id), reason=reason)
    return Invoice.objects.get(pk=invoice_id)

"""The ``*_many`` steps of the invoice pipeline after GenerateInvoice: usage onto the renewal
invoice, CalculateTax, FinalizeInvoice, and marking invoices paid. Each takes a whole batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction

from billing.acl.subscriptions import UsageFacts
from billing.commands.accounts import load_accounts
from billing.commands.invoices import InvoiceRequest, generate_invoices, renewal_invoice_needed
from billing.commands.unit_of_work import UnitOfWork, Work
from billing.models import (
    CreditEntry,
    Invoice,
    InvoiceStatus,
    Sequence,
)
from billing.ports import tax_calculator
from billing.values import (
    BillingReason,
    InvoicePeriod,
    LineDraft,
    LineKind,
    TaxUnavailable,
)
from sharedkernel.commands import command
from sharedkernel.outside import ensure_outside_transaction
from sharedkernel.values import Money

#: How long to wait before asking the tax calculator again, by failure count.
TAX_RETRY_BACKOFF = [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)]

# -- usage -------------------------------------------------------------------------------


def usage_lines(usage: UsageFacts) -> list[LineDraft]:
    """Overage per metric: max(0, used − included) × the plan's unit rate (up to 6 decimals),
    exact, rounded half-up to the minor unit once per line (UnitRate.charge)."""
    label = InvoicePeriod(usage.period.start, usage.period.end).label()
    return [
        LineDraft(
            LineKind.USAGE,
            f"{m.metric}: {m.overage:,} over the {m.included:,} included ({label}) at {m.rate} each",
            m.rate.charge(m.overage),
            quantity=m.overage,
            metric=m.metric,
        )
        for m in usage.metrics
        if m.overage > 0 and m.rate is not None
    ]


@dataclass(frozen=True)
class UsageBilled:
    """What :func:`bill_usage_many` did: the renewal drafts now ready for tax, and the usage that came
    before its renewal invoice (each with what it waits for; it was left without effect)."""

    ready: list[Work]
    early: list[tuple[Work, str]]


@command(
    aggregate="Invoice",
    records=("billing.InvoiceGenerated", "billing.InvoiceLineItemAdded"),
    name="billing.bill_usage",
    own_transaction=False,
)
def bill_usage_many(facts: list[tuple[UsageFacts, Work]]) -> UsageBilled:
    """Usage of closed periods: overage onto the waiting renewal invoice, or a final invoice.
    Returns the renewal drafts now ready for tax (the caller quotes them after its commit), and the
    usage whose renewal invoice is not there yet (the caller's event waits for it).

    Records billing.InvoiceGenerated, billing.InvoiceLineItemAdded."""
    waiting = {
        (str(i.subscription_id), i.period_start): i
        for i in Invoice.objects.select_for_update(of=("self",))
        .filter(
            subscription_id__in={f.subscription_id for f, _ in facts}, awaiting_usage=True, status=InvoiceStatus.DRAFT
        )
        .order_by("pk")
        .prefetch_related("lines")
    }
    uow = UnitOfWork()
    finals, ready, early = [], [], []
    for usage, work in facts:
        lines = usage_lines(usage)
        invoice = waiting.get((usage.subscription_id, usage.period.end))
        if invoice is not None:
            invoice.add_usage(lines, at=work.at)
            uow.touch(invoice, work.cause)
            ready.append(Work(str(invoice.id), work.at, work.cause))
        elif (
            not usage.final
            and not Invoice.objects.filter(
                subscription_id=usage.subscription_id, period_start=usage.period.end
            ).exists()
        ):
            early.append((work, renewal_invoice_needed(usage.subscription_id, usage.period.end)))
        elif lines:  # the renewal was billed already, or the subscription ended: an invoice of its own
            finals.append(
                InvoiceRequest(
                    customer_id=usage.customer_id,
                    subscription_id=usage.subscription_id,
                    plan_name=usage.plan_name,
                    currency=usage.currency,
                    reason=BillingReason.SUBSCRIPTION_CANCEL if usage.final else BillingReason.MANUAL,
                    lines=tuple(lines),
                    at=work.at,
                    cause=work.cause,
                    period=usage.period,
                )
            )
    uow.commit()
    generate_invoices(finals)
    return UsageBilled(await_tax(ready), early)


# -- invoices: tax, finalize -----------------------------------------------------------


def _taxable(ids: Iterable[str], *, lock: bool = False) -> list[Invoice]:
    query = Invoice.objects.filter(pk__in=ids, status=InvoiceStatus.DRAFT, tax_calculated=False, awaiting_usage=False)
    if lock:
        query = query.select_for_update(of=("self",)).order_by("pk")
    return list(query.prefetch_related("lines"))


def await_tax(work: list[Work]) -> list[Work]:
    """In a handler's transaction, before the quote that follows its commit: the drafts to be taxed get a
    retry time, so that if that quote is never recorded (the worker died), ``billing.retry_tax`` asks again."""
    by_clock: dict[str | None, list[Work]] = defaultdict(list)
    for item in work:
        by_clock[item.cause.test_clock_id].append(item)
    for items in by_clock.values():
        Invoice.objects.filter(
            pk__in=[w.id for w in items],
            status=InvoiceStatus.DRAFT,
            tax_calculated=False,
            awaiting_usage=False,
            tax_retry_at__isnull=True,
        ).update(tax_retry_at=max(w.at for w in items) + TAX_RETRY_BACKOFF[0])
    return work


@command(
    aggregate="Invoice",
    records=("billing.TaxCalculated", "billing.TaxCalculationFailed"),
    name="billing.calculate_tax",
    own_transaction=False,
)
def calculate_tax_many(work: list[Work]) -> int:
    """CalculateTax for drafts not taxed yet. A calculator failure leaves the draft
    waiting with TaxCalculationFailed and a retry time; it never invents a rate.

    Runs with no transaction open (the calculator may be an HTTP API): quote first, then record
    TaxCalculated in a transaction that locks each draft and re-checks it is still the draft that was
    quoted (same version); one that changed meanwhile is quoted again.
    """
    ensure_outside_transaction("billing.calculate_tax_many")
    items = {w.id: w for w in work}
    recorded = 0
    for _ in range(3):
        invoices = _taxable(items.keys())
        if not invoices:
            break
        accounts = load_accounts(i.customer_id for i in invoices)
        answers = tax_calculator().calculate_many(
            [
                (i.taxable_amount, accounts[str(i.customer_id)].jurisdiction, accounts[str(i.customer_id)].tax_exempt)
                for i in invoices
            ]
        )
        quoted = {str(i.id): (i.version, answer) for i, answer in zip(invoices, answers, strict=True)}
        changed = set()
        with transaction.atomic(durable=True):
            uow = UnitOfWork()
            for invoice in _taxable(quoted.keys(), lock=True):
                item, (version, answer) = items[str(invoice.id)], quoted[str(invoice.id)]
                if invoice.version != version:
                    changed.add(str(invoice.id))
                    continue
                if isinstance(answer, TaxUnavailable):
                    invoice.tax_failed(str(answer), at=item.at, backoff=TAX_RETRY_BACKOFF)
                else:
                    invoice.apply_tax(answer, at=item.at)
                uow.touch(invoice, item.cause)
            uow.commit()
        recorded += len(uow.changed)
        if not changed:
            break
        items = {k: w for k, w in items.items() if k in changed}
    return recorded


def _invoice_numbers(invoices: list[Invoice], at_of: dict[str, datetime]) -> dict[str, str]:
    """Gapless numbers per year, in the order given (the Sequence row stays locked until commit)."""
    by_year: dict[int, list[Invoice]] = defaultdict(list)
    for invoice in invoices:
        by_year[at_of[str(invoice.id)].year].append(invoice)
    numbers = {}
    for year, group in sorted(by_year.items()):
        for invoice, n in zip(group, Sequence.take(f"invoice-{year}", len(group)), strict=True):
            numbers[str(invoice.id)] = f"INV-{year}-{n:06d}"
    return numbers


@command(
    aggregate="Invoice", records=("billing.InvoiceFinalized",), name="billing.finalize_invoices", own_transaction=False
)
def finalize_many(work: list[Work]) -> int:
    """FinalizeInvoice for taxed drafts: number, credit from the balance, frozen.

    Records billing.InvoiceFinalized."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.select_for_update(of=("self",))
        .filter(pk__in=items.keys(), status=InvoiceStatus.DRAFT, tax_calculated=True)
        .order_by("pk")  # locked in the one order every batch locks invoices in: no deadlock
        .prefetch_related("lines")
    )
    if not invoices:
        return 0
    invoices.sort(key=lambda i: (i.created_at, i.id))  # numbered in the order they were drafted
    numbers = _invoice_numbers(invoices, {k: w.at for k, w in items.items()})
    # Accounts are locked so that two invoices never spend the same credit.
    accounts = load_accounts((i.customer_id for i in invoices if i.total.is_positive()), lock=True)
    uow = UnitOfWork()
    for invoice in invoices:
        item = items[str(invoice.id)]
        account = accounts.get(str(invoice.customer_id))
        available = account.credit(invoice.currency) if account else Money.zero(invoice.currency)
        used = invoice.finalize(number=numbers[str(invoice.id)], credit_available=available, at=item.at)
        if used.is_positive():
            account.use_credit(used)
            uow.touch(account, item.cause)
            uow.rows.append(
                CreditEntry(
                    customer_id=account.customer_id,
                    currency=used.currency,
                    amount_minor=-used.minor_units,
                    balance_minor=account.credit(used.currency).minor_units,
                    source=CreditEntry.Source.INVOICE,
                    reason=f"Used on invoice {invoice.number}",
                    invoice_id=invoice.id,
                    created_at=item.at,
                )
            )
        uow.touch(invoice, item.cause)
    uow.commit()
    return len(invoices)


@command(
    aggregate="Invoice", records=("billing.InvoicePaid",), name="billing.mark_invoices_paid", own_transaction=False
)
def mark_paid_many(work: list[tuple[Work, Money]]) -> int:
    """A succeeded payment marks its finalized invoice paid. Records billing.InvoicePaid."""
    items = {w.id: (w, amount) for w, amount in work}
    invoices = list(
        Invoice.objects.select_for_update().filter(pk__in=items.keys(), status=InvoiceStatus.FINALIZED).order_by("pk")
    )
    uow = UnitOfWork()
    for invoice in invoices:
        item, amount = items[str(invoice.id)]
        invoice.mark_paid(amount, at=item.at)
        uow.touch(invoice, item.cause)
    uow.commit()
    return len(invoices)

"""Application services of the Billing context.

Single commands (an API call, a page, the admin) and the bulk steps of the
invoice pipeline share one code path: the ``*_many`` functions take a batch,
lock its rows, call the aggregate method on each, and write everything with a
:class:`UnitOfWork` — bulk inserts/updates and one event append — so a bill
run costs a handful of queries per batch rather than per subscription. The
invariants stay in the aggregate methods (models/).

Gateway calls happen inside the transaction, with an idempotency key per
attempt: if the transaction is rolled back and retried, the gateway answers
the same attempt again instead of charging twice.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import models

from billing import events as ev
from billing.acl.subscriptions import PlanChangeFacts, UsageFacts
from billing.models import (
    AttemptTrigger,
    BilledSubscription,
    BillingAccount,
    BillingPlan,
    Coupon,
    CreditEntry,
    CurrencyMismatch,
    Discount,
    DunningSchedule,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Sequence,
)
from billing.ports import payment_gateway, tax_calculator
from billing.proration import Proration, prorate
from billing.values import (
    BillingReason,
    DunningPlan,
    InvalidPaymentMethod,
    InvoicePeriod,
    LineDraft,
    LineKind,
    PaymentOutcome,
    PaymentResult,
    TaxUnavailable,
)
from sharedkernel.aggregates import AggregateRoot
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.errors import DomainError, InvalidInput, InvalidTransition, NotFound
from sharedkernel.eventstore import append_batch
from sharedkernel.values import Money

#: How long to wait before asking the tax calculator again, by failure count.
TAX_RETRY_BACKOFF = [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)]


class MissingAccount(Exception):
    """An event names a customer Billing has not heard of yet (its CustomerRegistered
    is still on its way): the delivery fails and is retried."""


class CouponNotApplicable(DomainError):
    code = "coupon_not_applicable"


class RefundFailed(DomainError):
    code = "refund_failed"


# -- writing many aggregates at once ----------------------------------------------------


def _fields(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if not f.primary_key and f.name != "version"]


@dataclass
class UnitOfWork:
    """Collects new and changed aggregates of one transaction and writes them in bulk.

    Changed aggregates must have been loaded under ``select_for_update`` (the
    lock replaces the optimistic version check); versions still advance.
    """

    new: list[tuple[AggregateRoot, Cause]] = field(default_factory=list)
    changed: list[tuple[AggregateRoot, Cause]] = field(default_factory=list)
    rows: list[models.Model] = field(default_factory=list)

    def add(self, aggregate: AggregateRoot, cause: Cause) -> None:
        self.new.append((aggregate, cause))

    def touch(self, aggregate: AggregateRoot, cause: Cause) -> None:
        if not any(a is aggregate for a, _ in self.changed):
            self.changed.append((aggregate, cause))

    def commit(self) -> None:
        for aggregate, _ in self.new:
            aggregate.version = 1
        for items in _by_model(a for a, _ in self.new).values():
            insert_rows(items)
        for model, items in _by_model(a for a, _ in self.changed).items():
            for aggregate in items:
                aggregate.version += 1
            bulk_update_rows(items, [*_fields(model), "version"])
        children = [*self.rows]
        for aggregate, _ in [*self.new, *self.changed]:
            for take in ("take_new_lines", "take_new_children"):
                if hasattr(aggregate, take):
                    children.extend(getattr(aggregate, take)())
        for items in _by_model(children).values():
            insert_rows(items)
        append_batch((cause, aggregate.pull_events()) for aggregate, cause in [*self.new, *self.changed])


def _by_model(items: Iterable[models.Model]) -> dict[type, list]:
    grouped: dict[type, list] = defaultdict(list)
    for item in items:
        grouped[type(item)].append(item)
    return grouped


@dataclass(frozen=True)
class Work:
    """One item of a batch: what to act on, when it happens, and what caused it."""

    id: str
    at: datetime
    cause: Cause


def _accounts(customer_ids: Iterable, *, lock: bool = False) -> dict[str, BillingAccount]:
    query = BillingAccount.objects.filter(pk__in=set(customer_ids))
    if lock:
        query = query.select_for_update()
    return {str(a.customer_id): a for a in query}


def _account(customer_id, *, lock: bool = False) -> BillingAccount:
    account = _accounts([customer_id], lock=lock).get(str(customer_id))
    if account is None:
        raise NotFound("No such customer.")
    return account


def _single(id_: str, clock: Clock | None, test_clock_id) -> list[Work]:
    return [Work(str(id_), (clock or clock_for(test_clock_id)).now(), current_cause())]


# -- accounts ---------------------------------------------------------------------------


@command
def open_account(
    *,
    customer_id: str,
    name: str,
    email: str,
    currency: str,
    country: str,
    region: str,
    tax_exempt: bool,
    user_id: int | None,
    test_clock_id: str | None,
    at: datetime,
) -> BillingAccount | None:
    """OpenBillingAccount (from CustomerRegistered). Opening twice has one effect."""
    if BillingAccount.objects.filter(pk=customer_id).exists():
        return None
    account = BillingAccount.open(
        customer_id=customer_id,
        name=name,
        email=email,
        currency=currency,
        country=country,
        region=region,
        tax_exempt=tax_exempt,
        user_id=user_id,
        test_clock_id=test_clock_id,
        at=at,
    )
    uow = UnitOfWork()
    uow.add(account, current_cause())
    uow.commit()
    return account


@command
def update_payment_method(*, customer_id: str, token: str, clock: Clock | None = None) -> BillingAccount:
    """UpdatePaymentMethod: the gateway must know the token. Failed payments are retried at once (policy)."""
    token = (token or "").strip()
    if not token:
        raise InvalidInput("Give a payment method token.", details={"token": "This field is required."})
    account = _account(customer_id, lock=True)
    try:
        method = payment_gateway().describe(token)
    except InvalidPaymentMethod as exc:
        raise InvalidInput(str(exc), details={"token": "unknown payment method"}) from None
    account.set_payment_method(method, at=(clock or clock_for(account.test_clock_id)).now())
    uow = UnitOfWork()
    uow.touch(account, current_cause())
    uow.commit()
    return account


def _credit(
    uow: UnitOfWork,
    account: BillingAccount,
    amount: Money,
    *,
    reason: str,
    source: str,
    at: datetime,
    cause: Cause,
    subscription_id=None,
    invoice_id=None,
    billed_in=None,
) -> None:
    balance = account.add_credit(
        amount, reason=reason, source=source, at=at, subscription_id=subscription_id, billed_in=billed_in
    )
    uow.touch(account, cause)
    uow.rows.append(
        CreditEntry(
            customer_id=account.customer_id,
            currency=amount.currency,
            amount_minor=amount.minor_units,
            balance_minor=balance.minor_units,
            source=source,
            reason=reason.strip(),
            subscription_id=subscription_id,
            invoice_id=invoice_id,
            created_at=at,
        )
    )


@command
def grant_credit(*, customer_id: str, amount: Money, reason: str, clock: Clock | None = None) -> Money:
    """ApplyCredit (staff): returns the new balance in that currency. Refused with
    ``currency_mismatch`` in a currency the customer is not billed in (BillingAccount.add_credit)."""
    if not amount.is_positive():
        raise InvalidInput("A credit is a positive amount.", details={"amount": "must be positive"})
    if not (reason or "").strip():
        raise InvalidInput("Say why the credit is given; the customer sees it.", details={"reason": "required"})
    account = _account(customer_id, lock=True)
    uow = UnitOfWork()
    at = (clock or clock_for(account.test_clock_id)).now()
    billed_in = set(
        BilledSubscription.objects.filter(customer_id=account.customer_id)
        .exclude(status="cancelled")
        .values_list("currency", flat=True)
    )
    _credit(
        uow,
        account,
        amount,
        reason=reason,
        source=CreditEntry.Source.GRANT,
        at=at,
        cause=current_cause(),
        billed_in=billed_in,
    )
    uow.commit()
    return account.credit(amount.currency)


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


def plan_line(plan_name: str, price: Money, period: InvoicePeriod) -> LineDraft:
    return LineDraft(LineKind.PLAN, f"{plan_name} ({period.label()})", price)


def generate_invoices(requests: list[InvoiceRequest]) -> list[Invoice]:
    """Draft invoices (a bill run's worth at once). A (subscription, period) already
    invoiced is skipped; the unique constraint backs this up against a concurrent run."""
    if not requests:
        return []
    accounts = _accounts(r.customer_id for r in requests)
    missing = {r.customer_id for r in requests} - accounts.keys()
    if missing:
        raise MissingAccount(f"No billing account yet for {sorted(missing)[:3]}")
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
    invoices = []
    for request in requests:
        key = (str(request.subscription_id), request.period.start if request.period else None)
        if request.reason.recurring and key in done:
            continue
        done.add(key)
        lines = list(request.lines)
        discount = discounts.get(str(request.subscription_id)) if request.reason.recurring else None
        if discount is not None and not discount.exhausted:
            plan_total = Money.total((line.amount for line in lines if line.kind == LineKind.PLAN), request.currency)
            off = discount.coupon.discount_on(plan_total)
            if off.is_negative():
                lines.append(
                    LineDraft(LineKind.DISCOUNT, f"{discount.coupon.name} ({discount.coupon.describe()})", off)
                )
                if discount.periods_remaining is not None:
                    discount.periods_remaining -= 1
                    uow.rows.append(discount)  # saved below
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
    changed_discounts = [row for row in uow.rows if isinstance(row, Discount)]
    uow.rows = [row for row in uow.rows if not isinstance(row, Discount)]
    uow.commit()
    if changed_discounts:
        bulk_update_rows(changed_discounts, ["periods_remaining"])
    return invoices


@command
def invoice_subscription(request: InvoiceRequest) -> Invoice | None:
    invoices = generate_invoices([request])
    return invoices[0] if invoices else None


# -- usage -------------------------------------------------------------------------------


def usage_lines(usage: UsageFacts) -> list[LineDraft]:
    """Overage per metric: max(0, used − included) × the plan's rate, exact in the currency."""
    label = InvoicePeriod(usage.period.start, usage.period.end).label()
    return [
        LineDraft(
            LineKind.USAGE,
            f"{m.metric}: {m.overage:,} over the {m.included:,} included ({label}) at {m.rate} each",
            m.rate.times(m.overage),
            quantity=m.overage,
            metric=m.metric,
        )
        for m in usage.metrics
        if m.overage > 0 and m.rate is not None
    ]


class MissingInvoice(Exception):
    """The renewal invoice the usage belongs to is not there yet (retried)."""


def bill_usage_many(facts: list[tuple[UsageFacts, Work]]) -> None:
    """Usage of closed periods: overage onto the waiting renewal invoice, or a final invoice."""
    waiting = {
        (str(i.subscription_id), i.period_start): i
        for i in Invoice.objects.select_for_update(of=("self",))
        .filter(
            subscription_id__in={f.subscription_id for f, _ in facts}, awaiting_usage=True, status=InvoiceStatus.DRAFT
        )
        .prefetch_related("lines")
    }
    uow = UnitOfWork()
    finals, ready = [], []
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
            raise MissingInvoice(f"No renewal invoice yet for {usage.subscription_id} from {usage.period.end}")
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
    calculate_tax_many(ready)


# -- invoices: tax, finalize -----------------------------------------------------------


def calculate_tax_many(work: list[Work]) -> int:
    """CalculateTax for drafts not taxed yet. A calculator failure leaves the draft
    waiting with TaxCalculationFailed and a retry time; it never invents a rate."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.select_for_update(of=("self",))
        .filter(pk__in=items.keys(), status=InvoiceStatus.DRAFT, tax_calculated=False, awaiting_usage=False)
        .prefetch_related("lines")
    )
    accounts = _accounts(i.customer_id for i in invoices)
    answers = tax_calculator().calculate_many(
        [
            (i.taxable_amount, accounts[str(i.customer_id)].jurisdiction, accounts[str(i.customer_id)].tax_exempt)
            for i in invoices
        ]
    )
    uow = UnitOfWork()
    for invoice, answer in zip(invoices, answers, strict=True):
        item = items[str(invoice.id)]
        if isinstance(answer, TaxUnavailable):
            invoice.tax_failed(str(answer), at=item.at, backoff=TAX_RETRY_BACKOFF)
        else:
            invoice.apply_tax(answer, at=item.at)
        uow.touch(invoice, item.cause)
    uow.commit()
    return len(invoices)


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


def finalize_many(work: list[Work]) -> int:
    """FinalizeInvoice for taxed drafts: number, credit from the balance, frozen."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.select_for_update(of=("self",))
        .filter(pk__in=items.keys(), status=InvoiceStatus.DRAFT, tax_calculated=True)
        .order_by("created_at", "id")
        .prefetch_related("lines")
    )
    if not invoices:
        return 0
    numbers = _invoice_numbers(invoices, {k: w.at for k, w in items.items()})
    # Accounts are locked so that two invoices never spend the same credit.
    accounts = _accounts((i.customer_id for i in invoices if i.total.is_positive()), lock=True)
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


# -- payments --------------------------------------------------------------------------


def _charge(payment: Payment, account: BillingAccount, *, trigger: AttemptTrigger, plan: DunningPlan, at: datetime):
    """One attempt: zero is settled by credit, otherwise the gateway is asked."""
    if payment.amount.is_zero():
        payment.pay_with_credit(at=at)
        return
    payment.begin_attempt(trigger=trigger, payment_method=account.payment_method_label or "no payment method", at=at)
    if account.has_payment_method:
        result = payment_gateway().charge(
            amount=payment.amount,
            token=account.payment_token,
            idempotency_key=payment.idempotency_key,
            description=f"Invoice {payment.invoice_number}",
        )
    else:
        result = PaymentResult(PaymentOutcome.DECLINED, "", "no_payment_method", "There is no payment method on file.")
    payment.record_result(result, trigger=trigger, plan=plan, at=at)


def update_payment_method_url() -> str:
    return f"{settings.SITE_URL.rstrip('/')}/billing/payment-method/"


def collect_many(work: list[Work]) -> int:
    """ProcessPayment for finalized invoices that have no payment yet."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.filter(pk__in=items.keys(), status=InvoiceStatus.FINALIZED).exclude(
            pk__in=Payment.objects.filter(invoice_id__in=items.keys()).values("invoice_id")
        )
    )
    if not invoices:
        return 0
    accounts = _accounts(i.customer_id for i in invoices)
    plan = DunningSchedule.current()
    url = update_payment_method_url()
    uow = UnitOfWork()
    for invoice in invoices:
        item = items[str(invoice.id)]
        payment = Payment.open(
            invoice_id=invoice.id,
            invoice_number=invoice.number,
            customer_id=invoice.customer_id,
            subscription_id=invoice.subscription_id,
            amount=invoice.amount_due,
            customer_name=invoice.customer_name,
            customer_email=invoice.customer_email,
            plan_name=invoice.plan_name,
            billing_reason=invoice.billing_reason,
            update_payment_method_url=url,
            at=item.at,
            test_clock_id=invoice.test_clock_id,
        )
        _charge(payment, accounts[str(invoice.customer_id)], trigger=AttemptTrigger.INITIAL, plan=plan, at=item.at)
        uow.add(payment, item.cause)
    uow.commit()
    return len(invoices)


def retry_many(work: list[Work], *, trigger: AttemptTrigger) -> int:
    """RetryPayment: scheduled retries, dunning steps, a new card or "pay now"."""
    items = {w.id: w for w in work}
    payments = list(Payment.objects.select_for_update().filter(pk__in=items.keys(), status__in=["pending", "failed"]))
    accounts = _accounts(p.customer_id for p in payments)
    plan = DunningSchedule.current()
    uow = UnitOfWork()
    for payment in payments:
        item = items[str(payment.id)]
        if trigger == AttemptTrigger.RETRY and (payment.next_retry_at is None or payment.next_retry_at > item.at):
            continue  # someone else retried it meanwhile
        if trigger == AttemptTrigger.DUNNING:
            if payment.next_dunning_at is None or payment.next_dunning_at > item.at:
                continue
            if not payment.escalate(plan=plan, at=item.at):
                uow.touch(payment, item.cause)
                continue
        _charge(payment, accounts[str(payment.customer_id)], trigger=trigger, plan=plan, at=item.at)
        uow.touch(payment, item.cause)
    uow.commit()
    return len(uow.changed)


def mark_paid_many(work: list[tuple[Work, Money]]) -> int:
    items = {w.id: (w, amount) for w, amount in work}
    invoices = list(Invoice.objects.select_for_update().filter(pk__in=items.keys(), status=InvoiceStatus.FINALIZED))
    uow = UnitOfWork()
    for invoice in invoices:
        item, amount = items[str(invoice.id)]
        invoice.mark_paid(amount, at=item.at)
        uow.touch(invoice, item.cause)
    uow.commit()
    return len(invoices)


@command
def pay_invoice(*, invoice_id: str, clock: Clock | None = None) -> Payment:
    """Pay now with the current payment method (API ``pay/``, the customer's button)."""
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    if invoice.status != InvoiceStatus.FINALIZED:
        raise InvalidTransition(f"Invoice {invoice} is {invoice.status}; only a finalized, unpaid invoice can be paid.")
    payment = Payment.objects.filter(invoice_id=invoice.id).first()
    at = (clock or clock_for(invoice.test_clock_id)).now()
    if payment is None:
        collect_many([Work(str(invoice.id), at, current_cause())])
    else:
        retry_many([Work(str(payment.id), at, current_cause())], trigger=AttemptTrigger.MANUAL)
    return Payment.objects.get(invoice_id=invoice.id)


def retry_after_new_payment_method(customer_id: str, *, at: datetime, cause: Cause) -> int:
    ids = Payment.objects.filter(customer_id=customer_id, status=PaymentStatus.FAILED).values_list("pk", flat=True)
    return retry_many([Work(str(pk), at, cause) for pk in ids], trigger=AttemptTrigger.PAYMENT_METHOD)


# -- void, refund ----------------------------------------------------------------------


def void_many(work: list[Work], *, reason: str) -> int:
    """VoidInvoice: collection stops; credit the invoice used goes back to the balance."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.select_for_update().filter(
            pk__in=items.keys(), status__in=[InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED]
        )
    )
    payments = {
        str(p.invoice_id): p
        for p in Payment.objects.select_for_update().filter(invoice_id__in=[i.id for i in invoices])
    }
    accounts = _accounts((i.customer_id for i in invoices if i.credit_applied.is_positive()), lock=True)
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
            _credit(
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


@command
def void_invoice(*, invoice_id: str, reason: str, clock: Clock | None = None) -> Invoice:
    invoice = Invoice.objects.filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    if not (reason or "").strip():
        raise InvalidInput("Say why the invoice is voided.", details={"reason": "required"})
    if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED):
        raise InvalidTransition(
            f"Invoice {invoice} is {invoice.status}; only a draft or an unpaid invoice can be voided."
        )
    void_many(_single(invoice.id, clock, invoice.test_clock_id), reason=reason)
    return Invoice.objects.get(pk=invoice_id)


@command
def refund_payment(*, payment_id: str, amount: Money, reason: str, clock: Clock | None = None):
    """IssueRefund: partial or full; the total refunded never exceeds what was paid."""
    payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    if not (reason or "").strip():
        raise InvalidInput("Say why the money goes back.", details={"reason": "required"})
    payment.check_refund(amount)
    at = (clock or clock_for(payment.test_clock_id)).now()
    result = payment_gateway().refund(
        charge_reference=payment.gateway_reference,
        amount=amount,
        idempotency_key=f"{payment.id}:refund:{payment.refunds.count() + 1}",
    )
    if not result.succeeded:
        raise RefundFailed(f"The payment gateway refused the refund: {result.failure_message}")
    [n] = Sequence.take(f"credit-note-{at.year}")
    refund = payment.refund(
        amount,
        reason=reason.strip(),
        credit_note_number=f"CN-{at.year}-{n:06d}",
        gateway_reference=result.reference,
        raw=result.raw,
        at=at,
    )
    uow = UnitOfWork()
    uow.touch(payment, current_cause())
    uow.commit()
    return refund


# -- plan changes ----------------------------------------------------------------------


def prorate_change(change: PlanChangeFacts, *, cause: Cause) -> Proration | None:
    """GenerateProratedInvoice (net > 0) or ApplyCredit (net < 0) for a PlanChanged."""
    if change.in_trial:
        return None
    if not (change.period.start <= change.changed_at < change.period.end) or not (
        change.new_period.start <= change.changed_at < change.new_period.end
    ):
        # The period had already run out (its renewal was still to come): nothing of it is left to
        # prorate; the renewal bills the new plan for the next period.
        return None
    proration = prorate(
        old_plan=change.old_plan_name,
        old_price=change.old_price,
        new_plan=change.new_plan_name,
        new_price=change.new_price,
        period=change.period,
        new_period=change.new_period,
        at=change.changed_at,
    )
    if proration.charges_now:
        generate_invoices(
            [
                InvoiceRequest(
                    customer_id=change.customer_id,
                    subscription_id=change.subscription_id,
                    plan_name=change.new_plan_name,
                    currency=proration.net.currency,
                    reason=BillingReason.SUBSCRIPTION_UPDATE,
                    lines=tuple(
                        LineDraft(LineKind.PRORATION, line.description, line.amount) for line in proration.lines
                    ),
                    at=change.changed_at,
                    cause=cause,
                    period=InvoicePeriod(change.changed_at, change.new_period.end),
                )
            ]
        )
    elif proration.credits:
        account = _account(change.customer_id, lock=True)
        uow = UnitOfWork()
        _credit(
            uow,
            account,
            -proration.net,
            reason=f"Unused time on {change.old_plan_name} after moving to {change.new_plan_name}",
            source=CreditEntry.Source.PRORATION,
            at=change.changed_at,
            cause=cause,
            subscription_id=change.subscription_id,
        )
        uow.commit()
    return proration


def preview_plan_change(*, subscription_id: str, plan_id: str, at: datetime | None = None) -> Proration:
    """What changing to ``plan_id`` now would charge or credit (the API and the page show this)."""
    sub = BilledSubscription.objects.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound("No such subscription.")
    try:
        plan_id = uuid.UUID(str(plan_id))
    except ValueError:
        raise InvalidInput("The plan is a plan id (a UUID).", details={"plan": "not a plan id"}) from None
    plan = BillingPlan.objects.filter(pk=plan_id).first()
    if plan is None:
        raise InvalidInput("No such plan.", details={"plan": "does not exist"})
    if not sub.live:
        raise InvalidTransition("A cancelled subscription cannot change plan.")
    if str(plan.plan_id) == str(sub.plan_id):
        raise _PreviewRefused("same_plan", f"The subscription is already on {plan.name}.")
    if plan.archived:
        raise _PreviewRefused("plan_unavailable", f"{plan.name} is no longer offered.")
    new_price = plan.price(sub.currency)
    if new_price is None:
        raise _PreviewRefused("currency_not_offered", f"{plan.name} is not sold in {sub.currency}.")
    at = at or clock_for(sub.test_clock_id).now()
    period = InvoicePeriod(sub.period_start, sub.period_end)
    if sub.status == "trialing":
        return Proration(lines=(), net=Money.zero(sub.currency))
    if not period.start <= at < period.end:
        raise InvalidTransition("The subscription's current period is not running.")
    if plan.interval == sub.interval:
        new_period = period
    else:
        months = 12 if plan.interval == "year" else 1
        new_period = InvoicePeriod(at, at + relativedelta(months=months))
    return prorate(
        old_plan=sub.plan_name,
        old_price=sub.price,
        new_plan=plan.name,
        new_price=new_price,
        period=period,
        new_period=new_period,
        at=at,
    )


class _PreviewRefused(DomainError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class UpcomingInvoice:
    lines: tuple[LineDraft, ...]
    subtotal: Money
    tax: Money
    total: Money
    credit_applied: Money
    amount_due: Money
    period: InvoicePeriod


def upcoming_invoice(*, subscription_id: str) -> UpcomingInvoice:
    """The invoice the next renewal will produce, if nothing changes before then."""
    sub = BilledSubscription.objects.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound("No such subscription.")
    if not sub.live:
        raise InvalidTransition("A cancelled subscription has no upcoming invoice.")
    account = _account(sub.customer_id)
    months = 12 if sub.interval == "year" else 1
    period = InvoicePeriod(sub.period_end, sub.period_end + relativedelta(months=months))
    lines = [plan_line(sub.plan_name, sub.price, period)]
    discount = Discount.objects.select_related("coupon").filter(pk=sub.subscription_id).first()
    if discount is not None and not discount.exhausted:
        off = discount.coupon.discount_on(sub.price)
        if off.is_negative():
            lines.append(LineDraft(LineKind.DISCOUNT, f"{discount.coupon.name} ({discount.coupon.describe()})", off))
    subtotal = Money.total((line.amount for line in lines), sub.currency)
    try:
        tax = tax_calculator().calculate(
            amount=max(subtotal, Money.zero(sub.currency)), jurisdiction=account.jurisdiction, exempt=account.tax_exempt
        )
    except TaxUnavailable:
        raise InvalidTransition("Tax cannot be calculated right now; try again shortly.") from None
    lines.append(LineDraft(LineKind.TAX, tax.name, tax.tax))
    total = subtotal + tax.tax
    credit = min(account.credit(sub.currency), total) if total.is_positive() else Money.zero(sub.currency)
    if credit.is_positive():
        lines.append(LineDraft(LineKind.CREDIT, "Account credit applied", -credit))
    return UpcomingInvoice(tuple(lines), subtotal, tax.tax, total, credit, total - credit, period)


# -- coupons ---------------------------------------------------------------------------


@command
def apply_coupon(*, subscription_id: str, code: str, clock: Clock | None = None) -> Discount:
    """RedeemCoupon: one coupon per subscription, within the coupon's limits."""
    code = (code or "").strip().upper()
    if not code:
        raise InvalidInput("Enter a coupon code.", details={"code": "required"})
    sub = BilledSubscription.objects.filter(pk=subscription_id).first()
    if sub is None:
        raise NotFound("No such subscription.")
    coupon = Coupon.objects.select_for_update().filter(pk=code).first()
    at = (clock or clock_for(sub.test_clock_id)).now()
    if coupon is None or not coupon.active or (coupon.redeem_by and coupon.redeem_by < at):
        raise CouponNotApplicable(f"The coupon {code} is not valid.")
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise CouponNotApplicable(f"The coupon {code} has been used up.")
    if not sub.live:
        raise InvalidTransition("A cancelled subscription cannot take a coupon.")
    if Discount.objects.filter(pk=sub.subscription_id).exists():
        raise CouponNotApplicable("This subscription already has a coupon.")
    if coupon.amount_off is not None and coupon.currency != sub.currency:
        raise CurrencyMismatch(
            f"The coupon {code} is for {coupon.currency}; this subscription is billed in {sub.currency}."
        )
    account = _account(sub.customer_id, lock=True)
    periods = {"once": 1, "repeating": coupon.duration_in_periods, "forever": None}[coupon.duration]
    discount = Discount.objects.create(
        subscription_id=sub.subscription_id,
        customer_id=sub.customer_id,
        coupon=coupon,
        periods_remaining=periods,
        redeemed_at=at,
    )
    coupon.times_redeemed += 1
    coupon.save(update_fields=["times_redeemed"])
    account.record(
        ev.CouponRedeemed(
            customer_id=str(account.customer_id),
            subscription_id=str(sub.subscription_id),
            coupon_code=coupon.code,
            duration=coupon.duration,
            duration_in_periods=coupon.duration_in_periods,
            percent_off=coupon.percent_off,
            amount_off=coupon.amount_off,
        ),
        at=at,
    )
    uow = UnitOfWork()
    uow.touch(account, current_cause())
    uow.commit()
    return discount


def new_cause_for(test_clock_id) -> Cause:
    """A fresh chain for work that time starts (a retry, a dunning step)."""
    return Cause(new_correlation_id(), None, str(test_clock_id) if test_clock_id else None)

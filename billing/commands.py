"""Application services of the Billing context.

Single commands (an API call, a page, the admin) and the bulk steps of the
invoice pipeline share one code path: the ``*_many`` functions take a batch,
lock its rows, call the aggregate method on each, and write everything with a
:class:`UnitOfWork` — bulk inserts/updates and one event append — so a bill
run costs a handful of queries per batch rather than per subscription. The
invariants stay in the aggregate methods (models/).

No gateway or tax call happens inside a transaction (DESIGN.md rule 7): the
intent is recorded and committed, the outside is called with an idempotency
key derived from the intent (invoice + attempt), and the answer is recorded in
a new transaction — see the payments section, ``calculate_tax_many`` and
``refund_payment``.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

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
    PaymentInProgress,
    PaymentStatus,
    Refund,
    Sequence,
)
from billing.ports import payment_gateway, tax_calculator
from billing.proration import Proration, prorate
from billing.values import (
    BillingReason,
    GatewayNoAnswer,
    InvalidPaymentMethod,
    InvoicePeriod,
    LineDraft,
    LineKind,
    PaymentMethodInfo,
    PaymentOutcome,
    PaymentResult,
    RefundResult,
    TaxUnavailable,
)
from sharedkernel.aggregates import AggregateRoot
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.errors import DomainError, InvalidInput, InvalidTransition, NotFound
from sharedkernel.eventstore import append_batch
from sharedkernel.outside import CallInsideTransaction, ensure_outside_transaction
from sharedkernel.periods import nth_period
from sharedkernel.values import Money

logger = logging.getLogger(__name__)

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


@command(aggregate="BillingAccount", records=("billing.BillingAccountOpened",))
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


def update_payment_method(*, customer_id: str, token: str, clock: Clock | None = None) -> BillingAccount:
    """UpdatePaymentMethod: the gateway must know the token. Failed payments are retried at once (policy).

    The gateway describes the token first, with no transaction open; then the account is saved."""
    token = (token or "").strip()
    if not token:
        raise InvalidInput("Give a payment method token.", details={"token": "This field is required."})
    if not BillingAccount.objects.filter(pk=customer_id).exists():
        raise NotFound("No such customer.")
    try:
        method = payment_gateway().describe(token)
    except InvalidPaymentMethod as exc:
        raise InvalidInput(str(exc), details={"token": "unknown payment method"}) from None
    return _set_payment_method(customer_id=customer_id, method=method, clock=clock)


@command(aggregate="BillingAccount", records=("billing.PaymentMethodUpdated",), name="billing.set_payment_method")
def _set_payment_method(*, customer_id: str, method: PaymentMethodInfo, clock: Clock | None) -> BillingAccount:
    account = _account(customer_id, lock=True)
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


@command(aggregate="BillingAccount", records=("billing.CreditApplied",))
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


class MissingInvoice(Exception):
    """The renewal invoice the usage belongs to is not there yet (retried)."""


@command(
    aggregate="Invoice",
    records=("billing.InvoiceGenerated", "billing.InvoiceLineItemAdded"),
    name="billing.bill_usage",
    own_transaction=False,
)
def bill_usage_many(facts: list[tuple[UsageFacts, Work]]) -> list[Work]:
    """Usage of closed periods: overage onto the waiting renewal invoice, or a final invoice.
    Returns the renewal drafts now ready for tax (the caller quotes them after its commit)."""
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
    return await_tax(ready)


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
        accounts = _accounts(i.customer_id for i in invoices)
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
#
# An attempt is two transactions with the gateway call between them (DESIGN.md rule 7). The
# ``*_many`` steps lock the invoices / payments, record each attempt's intent (the payment is
# *processing*, PaymentAttempted) in the caller's transaction and return the payments now in flight.
# :func:`charge_in_flight`, with no transaction open, asks the gateway — keyed on invoice + attempt —
# and records every answer in one new transaction. A policy hands that call to ``after_commit``; an
# edge (API, page, admin, beat) makes it itself once its transaction committed. A crash in between
# leaves payments processing: :func:`resolve_stale_charges` (beat) asks the gateway again with the
# same key and records its idempotent answer, never a second charge.


def _cause_of_attempt(cause: Cause) -> dict:
    """The chain an attempt belongs to, kept on the payment so its answer, recorded later, joins it."""
    return {"correlation_id": cause.correlation_id, "causation_id": cause.causation_id}


def _cause_of_answer(payment: Payment) -> Cause:
    """The cause :func:`_cause_of_attempt` kept, for recording the attempt's answer."""
    kept = payment.in_flight_cause
    clock = str(payment.test_clock_id) if payment.test_clock_id else None
    return Cause(kept.get("correlation_id") or new_correlation_id(), kept.get("causation_id"), clock)


def _begin(payment: Payment, account: BillingAccount, *, trigger: AttemptTrigger, at: datetime, cause: Cause) -> bool:
    """One attempt's intent. Zero is settled by credit at once (False); otherwise the gateway is to be asked."""
    if payment.amount.is_zero():
        payment.pay_with_credit(at=at)
        return False
    payment.begin_attempt(
        trigger=trigger,
        payment_method=account.payment_method_label or "no payment method",
        token=account.payment_token if account.has_payment_method else "",
        at=at,
        since=timezone.now(),
        cause=_cause_of_attempt(cause),
    )
    return True


NO_PAYMENT_METHOD = PaymentResult(
    PaymentOutcome.DECLINED, "", "no_payment_method", "There is no payment method on file."
)


def _ask_gateway(payment: Payment) -> PaymentResult:
    """The attempt in flight, as the gateway answers it (the same key always gets the same answer)."""
    if not payment.in_flight_token:
        return NO_PAYMENT_METHOD
    try:
        return payment_gateway().charge(
            amount=payment.amount,
            token=payment.in_flight_token,
            idempotency_key=payment.idempotency_key,
            description=f"Invoice {payment.invoice_number}",
        )
    except CallInsideTransaction:
        raise
    except GatewayNoAnswer as exc:
        logger.warning("No answer from the gateway for %s (%s); the resolver asks again.", payment.idempotency_key, exc)
        raise
    except Exception as exc:  # an adapter bug or an outage it did not translate: unknown, ask again later
        logger.exception("Gateway call for %s failed; the resolver asks again.", payment.idempotency_key)
        raise GatewayNoAnswer(str(exc)) from exc


@command(
    aggregate="Payment",
    records=("billing.PaymentSucceeded", "billing.PaymentFailed", "billing.DunningStarted"),
    name="billing.charge",
    own_transaction=False,
)
def charge_in_flight(payment_ids: Iterable[str]) -> int:
    """Call the gateway for the given payments' attempts in flight and record the answers.

    Runs with no transaction open. The answers are recorded in one transaction that locks the
    payments and keeps only answers to the attempt still in flight (the resolver may have recorded
    it meanwhile). Returns how many answers were recorded.
    """
    ensure_outside_transaction("billing.charge_in_flight")
    ids = list(dict.fromkeys(str(pk) for pk in payment_ids))
    if not ids:
        return 0
    answers: dict[str, tuple[int, PaymentResult]] = {}
    for payment in Payment.objects.filter(pk__in=ids, status=PaymentStatus.PROCESSING).order_by("pk"):
        try:
            answers[str(payment.id)] = (payment.attempts, _ask_gateway(payment))
        except GatewayNoAnswer:
            continue
    if not answers:
        return 0
    with transaction.atomic(durable=True):
        payments = list(
            Payment.objects.select_for_update()
            .filter(pk__in=answers.keys(), status=PaymentStatus.PROCESSING)
            .order_by("pk")
        )
        plan = DunningSchedule.current()
        uow = UnitOfWork()
        for payment in payments:
            attempt, result = answers[str(payment.id)]
            if payment.attempts != attempt:
                continue
            cause = _cause_of_answer(payment)  # before the answer clears what the attempt kept
            payment.record_result(result, plan=plan, attempt=attempt)
            uow.touch(payment, cause)
        uow.commit()
    return len(uow.changed)


def resolve_stale_charges(*, older_than: timedelta, test_clock_id: str | None = None, limit: int = 1000) -> int:
    """Attempts in flight for longer than ``older_than`` (the worker died between intent and answer, or
    the answer could not be recorded): ask the gateway again with the same key, record what it says."""
    cutoff = timezone.now() - older_than
    total = 0
    refunds = Payment.objects.filter(refund_in_flight_since__lte=cutoff)
    refunds = refunds.filter(test_clock_id=test_clock_id) if test_clock_id else refunds
    for payment_id in refunds.values_list("pk", flat=True)[:limit]:
        refund, _ = _refund_in_flight(str(payment_id))
        total += refund is not None
    seen: set[str] = set()
    while True:
        query = Payment.objects.filter(status=PaymentStatus.PROCESSING, in_flight_since__lte=cutoff)
        query = query.filter(test_clock_id=test_clock_id) if test_clock_id else query
        ids = [
            str(pk)
            for pk in query.exclude(pk__in=seen).order_by("in_flight_since").values_list("pk", flat=True)[:limit]
        ]
        if not ids:
            return total
        seen.update(ids)
        total += charge_in_flight(ids)


def update_payment_method_url() -> str:
    return f"{settings.SITE_URL.rstrip('/')}/billing/payment-method/"


@command(
    aggregate="Payment",
    records=("billing.PaymentAttempted", "billing.PaymentSucceeded"),
    name="billing.collect_payments",
    own_transaction=False,
)
def collect_many(work: list[Work]) -> list[str]:
    """ProcessPayment for finalized invoices that have no payment yet: opens the payment and records its
    first attempt. The invoices are locked first, so a concurrent "pay now" and this policy never both
    open one. Returns the payments now in flight (for :func:`charge_in_flight`)."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.select_for_update().filter(pk__in=items.keys(), status=InvoiceStatus.FINALIZED).order_by("pk")
    )
    if not invoices:
        return []
    started = set(Payment.objects.filter(invoice_id__in=[i.id for i in invoices]).values_list("invoice_id", flat=True))
    invoices = [i for i in invoices if i.id not in started]
    accounts = _accounts(i.customer_id for i in invoices)
    url = update_payment_method_url()
    uow = UnitOfWork()
    charging = []
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
        account = accounts[str(invoice.customer_id)]
        if _begin(payment, account, trigger=AttemptTrigger.INITIAL, at=item.at, cause=item.cause):
            charging.append(str(payment.id))
        uow.add(payment, item.cause)
    uow.commit()
    return charging


@command(
    aggregate="Payment",
    records=(
        "billing.PaymentAttempted",
        "billing.PaymentSucceeded",
        "billing.DunningEscalated",
        "billing.DunningExhausted",
    ),
    name="billing.retry_payments",
    own_transaction=False,
)
def retry_many(work: list[Work], *, trigger: AttemptTrigger) -> list[str]:
    """RetryPayment: scheduled retries, dunning steps, a new card or "pay now". The payments are locked,
    and one already in flight is left alone. Returns the payments now in flight."""
    items = {w.id: w for w in work}
    payments = list(
        Payment.objects.select_for_update()
        .filter(pk__in=items.keys(), status__in=[PaymentStatus.PENDING, PaymentStatus.FAILED])
        .order_by("pk")
    )
    accounts = _accounts(p.customer_id for p in payments)
    plan = DunningSchedule.current()
    uow = UnitOfWork()
    charging = []
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
        if _begin(payment, accounts[str(payment.customer_id)], trigger=trigger, at=item.at, cause=item.cause):
            charging.append(str(payment.id))
        uow.touch(payment, item.cause)
    uow.commit()
    return charging


@command(
    aggregate="Invoice", records=("billing.InvoicePaid",), name="billing.mark_invoices_paid", own_transaction=False
)
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


@command(
    aggregate="Payment", records=("billing.PaymentAttempted", "billing.PaymentSucceeded"), name="billing.begin_paying"
)
def _begin_paying(*, invoice_id: str, clock: Clock | None) -> list[str]:
    invoice = Invoice.objects.select_for_update().filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound("No such invoice.")
    if invoice.status != InvoiceStatus.FINALIZED:
        raise InvalidTransition(f"Invoice {invoice} is {invoice.status}; only a finalized, unpaid invoice can be paid.")
    payment = Payment.objects.select_for_update().filter(invoice_id=invoice.id).first()
    at = (clock or clock_for(invoice.test_clock_id)).now()
    if payment is None:
        return collect_many([Work(str(invoice.id), at, current_cause())])
    if payment.in_flight:
        raise PaymentInProgress(
            f"A charge of invoice {invoice} is at the payment gateway (attempt {payment.attempts}); "
            "its answer is recorded shortly."
        )
    if payment.status == PaymentStatus.SUCCEEDED:
        raise InvalidTransition(f"Invoice {invoice} is paid already.")
    return retry_many([Work(str(payment.id), at, current_cause())], trigger=AttemptTrigger.MANUAL)


def pay_invoice(*, invoice_id: str, clock: Clock | None = None) -> Payment:
    """Pay now with the current payment method (API ``pay/``, the customer's button, the admin).

    The invoice is locked while the attempt is recorded; a payment already at the gateway refuses a
    second attempt (PaymentInProgress), a paid one refuses too. The gateway is called once that
    transaction committed, and the answer recorded in a new one: the payment returned has it.
    """
    charge_in_flight(_begin_paying(invoice_id=invoice_id, clock=clock))
    return Payment.objects.get(invoice_id=invoice_id)


def retry_after_new_payment_method(customer_id: str, *, at: datetime, cause: Cause) -> list[str]:
    ids = Payment.objects.filter(customer_id=customer_id, status=PaymentStatus.FAILED).values_list("pk", flat=True)
    return retry_many([Work(str(pk), at, cause) for pk in ids], trigger=AttemptTrigger.PAYMENT_METHOD)


# -- void, refund ----------------------------------------------------------------------


@command(
    aggregate="Invoice",
    records=("billing.InvoiceVoided", "billing.CreditApplied"),
    name="billing.void_invoices",
    own_transaction=False,
)
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


@command(aggregate="Invoice", records=("billing.InvoiceVoided",))
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


def refund_payment(*, payment_id: str, amount: Money, reason: str, clock: Clock | None = None) -> Refund:
    """IssueRefund: partial or full; the total refunded never exceeds what was paid.

    Three steps (DESIGN.md rule 7): the intent is recorded on the locked payment and committed (one
    refund in flight per payment: a second is refused with RefundInProgress); the gateway is asked with
    the intent's idempotency key and no transaction open; the answer is recorded in a new transaction —
    RefundIssued with its credit note number, or RefundFailed raised. A crash in between is resolved by
    ``resolve_stale_charges`` asking again with the same key.
    """
    request = _request_refund(payment_id=payment_id, amount=amount, reason=reason, clock=clock)
    refund, result = _refund_in_flight(payment_id, request)
    if refund is None:
        message = result.failure_message if result is not None else "no answer"
        raise RefundFailed(f"The payment gateway refused the refund: {message}")
    return refund


@command(aggregate="Payment", records=(), name="billing.request_refund")
def _request_refund(*, payment_id: str, amount: Money, reason: str, clock: Clock | None) -> int:
    payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    if not (reason or "").strip():
        raise InvalidInput("Say why the money goes back.", details={"reason": "required"})
    at = (clock or clock_for(payment.test_clock_id)).now()
    payment.request_refund(amount, reason=reason.strip(), at=at, since=timezone.now())
    uow = UnitOfWork()
    uow.touch(payment, current_cause())
    uow.commit()
    return payment.refund_requests


@command(aggregate="Payment", records=("billing.RefundIssued",), name="billing.refund", own_transaction=False)
def _refund_in_flight(payment_id: str, request: int | None = None) -> tuple[Refund | None, RefundResult | None]:
    """Ask the gateway for the payment's refund in flight and record the answer (no transaction open)."""
    payment = Payment.objects.filter(pk=payment_id, refund_in_flight_minor__isnull=False).first()
    if payment is None or (request is not None and payment.refund_requests != request):
        return None, None
    request = payment.refund_requests
    result = payment_gateway().refund(
        charge_reference=payment.gateway_reference,
        amount=payment.refund_in_flight,
        idempotency_key=payment.refund_idempotency_key,
    )
    with transaction.atomic(durable=True):
        payment = Payment.objects.select_for_update().filter(pk=payment_id, refund_requests=request).first()
        if payment is None or payment.refund_in_flight_minor is None:
            return None, result  # recorded meanwhile (the resolver)
        number = ""
        if result.succeeded:
            [n] = Sequence.take(f"credit-note-{payment.refund_in_flight_at.year}")
            number = f"CN-{payment.refund_in_flight_at.year}-{n:06d}"
        refund = payment.record_refund_result(result, request=request, credit_note_number=number)
        uow = UnitOfWork()
        uow.touch(payment, current_cause())
        uow.commit()
    return refund, result


# -- plan changes ----------------------------------------------------------------------


@command(
    aggregate="Invoice",
    records=("billing.InvoiceGenerated", "billing.InvoiceLineItemAdded", "billing.CreditApplied"),
    name="billing.prorate_change",
    own_transaction=False,
)
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
        credit, tax = proration.credit_with_tax(_tax_rate_of_period(change))
        reason = f"Unused time on {change.old_plan_name} after moving to {change.new_plan_name}"
        if tax.is_positive():
            reason += f" (including {tax} tax paid on it)"
        uow = UnitOfWork()
        _credit(
            uow,
            account,
            credit,
            reason=reason,
            source=CreditEntry.Source.PRORATION,
            at=change.changed_at,
            cause=cause,
            subscription_id=change.subscription_id,
        )
        uow.commit()
    return proration


def _tax_rate_of_period(change: PlanChangeFacts):
    """The rate the changed period was invoiced with: that of the subscription's latest issued
    invoice for the old plan started on or before the change (None when it was not taxed)."""
    invoice = (
        Invoice.objects.filter(
            subscription_id=change.subscription_id,
            status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID],
            created_at__lte=change.changed_at,
        )
        .exclude(tax_rate=None)
        .order_by("-created_at")
        .only("tax_rate")
        .first()
    )
    return invoice.tax_rate if invoice is not None else None


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
    # a new interval starts a period now, by the rule Subscriptions moves it with
    new_period = period if plan.interval == sub.interval else InvoicePeriod(*nth_period(at, plan.interval, 0))
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
    period = InvoicePeriod(*sub.next_period())
    price, version = sub.price_from(period.start)  # a scheduled price change shows from its renewal on
    lines = [plan_line(sub.plan_name, price, period, version)]
    discount = Discount.objects.select_related("coupon").filter(pk=sub.subscription_id).first()
    if discount is not None and not discount.exhausted:
        off = discount.coupon.discount_on(price)
        if off.is_negative():
            lines.append(LineDraft(LineKind.DISCOUNT, f"{discount.coupon.name} ({discount.coupon.describe()})", off))
    subtotal = Money.total((line.amount for line in lines), sub.currency)
    try:
        tax = tax_calculator().calculate(
            amount=max(subtotal, Money.zero(sub.currency)), jurisdiction=account.jurisdiction, exempt=account.tax_exempt
        )
    except TaxUnavailable:
        raise InvalidTransition("Tax cannot be calculated right now; try again shortly.") from None
    lines.append(LineDraft(LineKind.TAX, tax.describe(), tax.tax))
    total = subtotal + tax.tax
    credit = min(account.credit(sub.currency), total) if total.is_positive() else Money.zero(sub.currency)
    if credit.is_positive():
        lines.append(LineDraft(LineKind.CREDIT, "Account credit applied", -credit))
    return UpcomingInvoice(tuple(lines), subtotal, tax.tax, total, credit, total - credit, period)


# -- coupons ---------------------------------------------------------------------------


@command(aggregate="BillingAccount", records=("billing.CouponRedeemed",))
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

"""Commands on the Payment aggregate: ProcessPayment (collect), RetryPayment, the gateway call
(charge) and the resolver of charges a crash left in flight."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing.commands.accounts import load_accounts
from billing.commands.refunds import refund_in_flight
from billing.commands.unit_of_work import UnitOfWork, Work
from billing.models import (
    AttemptTrigger,
    BillingAccount,
    DunningSchedule,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentInProgress,
    PaymentStatus,
)
from billing.ports import payment_gateway
from billing.values import (
    GatewayNoAnswer,
    PaymentOutcome,
    PaymentResult,
)
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.errors import InvalidTransition, NotFound
from sharedkernel.outside import CallInsideTransaction, ensure_outside_transaction

logger = logging.getLogger(__name__)


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

    Records billing.PaymentSucceeded, billing.PaymentFailed, billing.DunningStarted."""
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
        refund, _ = refund_in_flight(str(payment_id))
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
    open one. Returns the payments now in flight (for :func:`charge_in_flight`).

    Records billing.PaymentAttempted, billing.PaymentSucceeded."""
    items = {w.id: w for w in work}
    invoices = list(
        Invoice.objects.select_for_update().filter(pk__in=items.keys(), status=InvoiceStatus.FINALIZED).order_by("pk")
    )
    if not invoices:
        return []
    started = set(Payment.objects.filter(invoice_id__in=[i.id for i in invoices]).values_list("invoice_id", flat=True))
    invoices = [i for i in invoices if i.id not in started]
    accounts = load_accounts(i.customer_id for i in invoices)
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
    and one already in flight is left alone. Returns the payments now in flight.

    Records billing.PaymentAttempted, billing.PaymentSucceeded, billing.DunningEscalated, billing.DunningExhausted."""
    items = {w.id: w for w in work}
    payments = list(
        Payment.objects.select_for_update()
        .filter(pk__in=items.keys(), status__in=[PaymentStatus.PENDING, PaymentStatus.FAILED])
        .order_by("pk")
    )
    accounts = load_accounts(p.customer_id for p in payments)
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
    aggregate="Payment", records=("billing.PaymentAttempted", "billing.PaymentSucceeded"), name="billing.begin_paying"
)
def _begin_paying(*, invoice_id: str, clock: Clock | None) -> list[str]:
    """Pay now, the recorded half: opens the payment or retries it, refused while an attempt is at the
    gateway or once paid. Records billing.PaymentAttempted, billing.PaymentSucceeded."""
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

"""IssueRefund on a Payment: intent, gateway call, answer (DESIGN.md rule 7)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from billing.commands.unit_of_work import UnitOfWork
from billing.models import (
    Payment,
    Refund,
    Sequence,
)
from billing.ports import payment_gateway
from billing.values import (
    RefundResult,
)
from sharedkernel.clock import Clock, clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import current_cause
from sharedkernel.errors import DomainError, InvalidInput, NotFound
from sharedkernel.values import Money


class RefundFailed(DomainError):
    code = "refund_failed"


def refund_payment(*, payment_id: str, amount: Money, reason: str, clock: Clock | None = None) -> Refund:
    """IssueRefund: partial or full; the total refunded never exceeds what was paid.

    Three steps (DESIGN.md rule 7): the intent is recorded on the locked payment and committed (one
    refund in flight per payment: a second is refused with RefundInProgress); the gateway is asked with
    the intent's idempotency key and no transaction open; the answer is recorded in a new transaction —
    RefundIssued with its credit note number, or RefundFailed raised. A crash in between is resolved by
    ``resolve_stale_charges`` asking again with the same key.
    """
    request = _request_refund(payment_id=payment_id, amount=amount, reason=reason, clock=clock)
    refund, result = refund_in_flight(payment_id, request)
    if refund is None:
        message = result.failure_message if result is not None else "no answer"
        raise RefundFailed(f"The payment gateway refused the refund: {message}")
    return refund


@command(aggregate="Payment", records=(), name="billing.request_refund")
def _request_refund(*, payment_id: str, amount: Money, reason: str, clock: Clock | None) -> int:
    """The refund's intent on the locked payment (committed before the gateway is asked).
    Records no event (RefundIssued is recorded with the answer)."""
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
def refund_in_flight(payment_id: str, request: int | None = None) -> tuple[Refund | None, RefundResult | None]:
    """Ask the gateway for the payment's refund in flight and record the answer (no transaction open).

    Records billing.RefundIssued."""
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

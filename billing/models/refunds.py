"""Refunds of a Payment: the intent recorded before the gateway is asked, the answer recorded after
(DESIGN.md rule 7), and the Refund rows with their credit note numbers.

:class:`PaymentRefunds` is the refund half of the Payment aggregate (billing/models/payments.py): its
methods run on a Payment, check its invariants (a refund never exceeds what was paid, one refund in
flight at a time) and record RefundIssued.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models

from billing import events as ev
from billing.models.payment_states import PaymentStatus
from sharedkernel.errors import DomainError, InvalidTransition
from sharedkernel.values import Money, money_from_minor


class RefundTooLarge(DomainError):
    code = "refund_exceeds_payment"


class RefundInProgress(DomainError):
    code = "refund_in_progress"


class PaymentRefunds:
    """Refunding a succeeded payment (mixed into :class:`~billing.models.payments.Payment`)."""

    def check_refund(self, amount: Money) -> None:
        if self.status != PaymentStatus.SUCCEEDED:
            raise InvalidTransition(f"Only a succeeded payment can be refunded (this one is {self.status}).")
        if amount.currency != self.currency:
            raise InvalidTransition(f"This payment is in {self.currency}; refund in {self.currency}.")
        if not amount.is_positive():
            raise InvalidTransition("A refund is a positive amount.")
        if amount > self.refundable:
            raise RefundTooLarge(
                f"At most {self.refundable} can be refunded ({self.amount} paid, {self.amount_refunded} refunded)."
            )

    def request_refund(self, amount: Money, *, reason: str, at: datetime, since: datetime) -> str:
        """Record the intent to refund (committed before the gateway is asked); returns its idempotency key."""
        if self.refund_in_flight_minor is not None:
            raise RefundInProgress("A refund of this payment is at the gateway; wait for its answer.")
        self.check_refund(amount)
        self.refund_requests += 1
        self.refund_in_flight_minor, self.refund_in_flight_reason = amount.minor_units, reason
        self.refund_in_flight_at, self.refund_in_flight_since = at, since
        return self.refund_idempotency_key

    refund_in_flight = money_from_minor("refund_in_flight_minor", optional=True)

    @property
    def refund_idempotency_key(self) -> str:
        return f"payment_{self.id}_refund_{self.refund_requests}"

    def record_refund_result(self, result, *, request: int, credit_note_number: str) -> Refund | None:
        """The gateway's answer to the refund in flight: the refund issued, or None when it was refused."""
        if self.refund_in_flight_minor is None or request != self.refund_requests:
            raise InvalidTransition(f"Refund request {request} of this payment is not in flight.")
        amount, reason, at = self.refund_in_flight, self.refund_in_flight_reason, self.refund_in_flight_at
        self.refund_in_flight_minor, self.refund_in_flight_reason = None, ""
        self.refund_in_flight_at = self.refund_in_flight_since = None
        if not result.succeeded:
            return None
        return self.refund(
            amount,
            reason=reason,
            credit_note_number=credit_note_number,
            gateway_reference=result.reference,
            raw=result.raw,
            at=at,
        )

    def refund(
        self, amount: Money, *, reason: str, credit_note_number: str, gateway_reference: str, raw: dict, at: datetime
    ) -> Refund:
        self.check_refund(amount)
        self.amount_refunded_minor += amount.minor_units
        refund = Refund(
            id=uuid.uuid4(),
            payment=self,
            amount_minor=amount.minor_units,
            reason=reason,
            credit_note_number=credit_note_number,
            gateway_reference=gateway_reference,
            raw=raw,
            created_at=at,
        )
        self._new_children.append(refund)
        self.record(
            ev.RefundIssued(
                **{**self._base(), "amount": amount},
                **self._person(),
                refund_id=str(refund.id),
                reason=reason,
                total_refunded=self.amount_refunded,
                credit_note_number=credit_note_number,
                refunded_at=at,
            ),
            at=at,
        )
        return refund


class Refund(models.Model):
    """Money given back, with its credit note number."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey("billing.Payment", on_delete=models.PROTECT, related_name="refunds")
    amount_minor = models.BigIntegerField()
    reason = models.CharField(max_length=300)
    credit_note_number = models.CharField(max_length=30, unique=True)
    gateway_reference = models.CharField(max_length=100, blank=True)
    raw = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.credit_note_number}: {self.amount}"

    amount = money_from_minor("amount_minor", currency="payment.currency")

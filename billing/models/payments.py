"""The Payment aggregate: collecting one invoice, attempt by attempt.

    Pending ──begin attempt──▶ Processing ──charge ok──▶ Succeeded ──refund…
       ▲                          │
       │                          └─declined─▶ Failed ──retry (+1 h, +24 h, +72 h)──▶ Processing …
                       │
                       └─retries used up─▶ dunning: step 1 … step n-1 (DunningEscalated,
                                            one more charge each) ─▶ step n: DunningExhausted

Retries and dunning steps follow the DunningSchedule from the first failure /
the start of dunning; a manual "pay now" or a new card tries at once without
shifting that schedule. The gateway's answer is kept on each attempt.

An attempt is two transactions with the gateway call between them (DESIGN.md
rule 7): ``begin_attempt`` records the intent (status *processing*, the token,
amount and cause it will be charged with) and commits; the gateway is called
with :attr:`Payment.idempotency_key` (invoice + attempt number) and no
transaction open; ``record_result`` records the answer in a new transaction.
While an attempt is processing no other attempt can begin, so one invoice is
never charged twice at once. A crash in between leaves the payment processing;
``billing.resolve_charges`` asks the gateway again with the same key and records
its (idempotent) answer.

Its words (status, trigger) are in payment_states.py, its attempts in attempts.py and its refunds
(the methods and the Refund rows) in refunds.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models

from billing import events as ev
from billing.models.attempts import PaymentAttempt
from billing.models.payment_states import AttemptTrigger, PaymentInProgress, PaymentStatus
from billing.models.refunds import PaymentRefunds
from billing.values import DunningPlan, PaymentResult
from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import InvalidTransition
from sharedkernel.values import Money, money_from_minor


class Payment(PaymentRefunds, AggregateRoot):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice_id = models.UUIDField(unique=True)
    invoice_number = models.CharField(max_length=30)
    customer_id = models.UUIDField(db_index=True)
    subscription_id = models.UUIDField(null=True, blank=True)
    currency = models.CharField(max_length=3)
    amount_minor = models.BigIntegerField()
    status = models.CharField(
        max_length=20, choices=PaymentStatus.choices, default=PaymentStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    scheduled_failures = models.PositiveIntegerField(
        default=0, help_text="Failures of the initial charge and its retries"
    )
    first_failed_at = models.DateTimeField(null=True, blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    dunning_level = models.PositiveSmallIntegerField(default=0)
    dunning_started_at = models.DateTimeField(null=True, blank=True)
    next_dunning_at = models.DateTimeField(null=True, blank=True, db_index=True)
    exhausted_at = models.DateTimeField(null=True, blank=True)
    failure_code = models.CharField(max_length=50, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    gateway_reference = models.CharField(max_length=100, blank=True)
    payment_method = models.CharField(max_length=60, blank=True)
    amount_refunded_minor = models.BigIntegerField(default=0)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    # snapshots for the events people read
    customer_name = models.CharField(max_length=200)
    customer_email = models.EmailField()
    plan_name = models.CharField(max_length=100, blank=True)
    billing_reason = models.CharField(max_length=30)
    update_payment_method_url = models.CharField(max_length=300, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)
    # the attempt in flight (status processing): what it charges with, so asking again is the same request
    in_flight_trigger = models.CharField(max_length=20, choices=AttemptTrigger.choices, blank=True)
    in_flight_token = models.CharField(max_length=100, blank=True)
    in_flight_at = models.DateTimeField(null=True, blank=True, help_text="The attempt's time (the clock's)")
    in_flight_since = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="When the intent was committed (wall time)"
    )
    in_flight_cause = models.JSONField(default=dict, blank=True)
    # the refund in flight: asked of the gateway after its intent committed (one at a time)
    refund_requests = models.PositiveIntegerField(default=0)
    refund_in_flight_minor = models.BigIntegerField(null=True, blank=True)
    refund_in_flight_reason = models.CharField(max_length=300, blank=True)
    refund_in_flight_at = models.DateTimeField(null=True, blank=True)
    refund_in_flight_since = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Payment of {self.amount} for {self.invoice_number}"

    amount = money_from_minor("amount_minor")
    amount_refunded = money_from_minor("amount_refunded_minor")

    @property
    def refundable(self) -> Money:
        return (
            self.amount - self.amount_refunded if self.status == PaymentStatus.SUCCEEDED else Money.zero(self.currency)
        )

    @property
    def in_dunning(self) -> bool:
        return self.dunning_started_at is not None and self.status == PaymentStatus.FAILED

    @property
    def _new_children(self) -> list:
        return self.__dict__.setdefault("_unsaved_children", [])

    def take_new_children(self) -> list:
        children = list(self._new_children)
        self._new_children.clear()
        return children

    def _base(self) -> dict:
        return {
            "payment_id": str(self.id),
            "invoice_id": str(self.invoice_id),
            "invoice_number": self.invoice_number,
            "customer_id": str(self.customer_id),
            "subscription_id": str(self.subscription_id) if self.subscription_id else None,
            "amount": self.amount,
        }

    def _person(self) -> dict:
        return {
            "customer_name": self.customer_name,
            "customer_email": self.customer_email,
            "plan_name": self.plan_name or None,
        }

    @classmethod
    def open(
        cls,
        *,
        invoice_id: str,
        invoice_number: str,
        customer_id: str,
        subscription_id: str | None,
        amount: Money,
        customer_name: str,
        customer_email: str,
        plan_name: str,
        billing_reason: str,
        update_payment_method_url: str,
        at: datetime,
        test_clock_id: str | None = None,
    ) -> Payment:
        if amount.is_negative():
            raise InvalidTransition("A payment collects a positive amount (or zero, paid by credit).")
        return cls(
            id=uuid.uuid4(),
            invoice_id=invoice_id,
            invoice_number=invoice_number,
            customer_id=customer_id,
            subscription_id=subscription_id,
            currency=amount.currency,
            amount_minor=amount.minor_units,
            customer_name=customer_name,
            customer_email=customer_email,
            plan_name=plan_name or "",
            billing_reason=billing_reason,
            update_payment_method_url=update_payment_method_url,
            created_at=at,
            test_clock_id=test_clock_id,
        )

    # -- attempts ----------------------------------------------------------------------
    def can_attempt(self) -> bool:
        return self.status in (PaymentStatus.PENDING, PaymentStatus.FAILED)

    @property
    def in_flight(self) -> bool:
        return self.status == PaymentStatus.PROCESSING

    def begin_attempt(
        self,
        *,
        trigger: AttemptTrigger,
        payment_method: str,
        token: str,
        at: datetime,
        since: datetime,
        cause: dict | None = None,
    ) -> int:
        """Record the intent to charge (committed before the gateway is called); returns the attempt number.

        ``token`` is what the gateway will be asked to charge (empty: no payment method, the attempt
        fails without a call); ``since`` is the wall time, for finding attempts a crash left behind.
        """
        if self.in_flight:
            raise PaymentInProgress(
                f"Attempt {self.attempts} of {self.invoice_number or 'this invoice'} is at the payment gateway; "
                "wait for its answer."
            )
        if not self.can_attempt():
            raise InvalidTransition(f"This payment is {self.status}; there is nothing to collect.")
        if trigger == AttemptTrigger.RETRY and (self.next_retry_at is None or self.next_retry_at > at):
            raise InvalidTransition("No retry of this payment is due.")
        self.attempts += 1
        self.payment_method = payment_method
        self.status = PaymentStatus.PROCESSING
        self.in_flight_trigger, self.in_flight_token = trigger, token
        self.in_flight_at, self.in_flight_since, self.in_flight_cause = at, since, cause or {}
        self.record(ev.PaymentAttempted(**self._base(), attempt=self.attempts, payment_method=payment_method), at=at)
        return self.attempts

    @property
    def idempotency_key(self) -> str:
        """Invoice + attempt: whoever sends this attempt (the first call, the resolver after a crash) sends
        the same key, and the gateway answers it once. One payment per invoice, so attempts count per invoice."""
        return f"invoice_{self.invoice_id}_attempt_{self.attempts}"

    def record_result(self, result: PaymentResult, *, plan: DunningPlan, attempt: int | None = None) -> PaymentAttempt:
        """The gateway's answer to the attempt in flight (``attempt``: the number it answered)."""
        if not self.in_flight or (attempt is not None and attempt != self.attempts):
            raise InvalidTransition(f"Attempt {attempt or self.attempts} of this payment is not in flight.")
        trigger, at = AttemptTrigger(self.in_flight_trigger), self.in_flight_at
        attempt_row = PaymentAttempt(
            payment=self,
            number=self.attempts,
            trigger=trigger,
            at=at,
            outcome=result.outcome.value,
            amount_minor=self.amount_minor,
            payment_method=self.payment_method,
            gateway_reference=result.reference,
            failure_code=result.failure_code,
            failure_message=result.failure_message[:300],
            raw=result.raw,
        )
        self._new_children.append(attempt_row)
        self.in_flight_trigger = self.in_flight_token = ""
        self.in_flight_at = self.in_flight_since = None
        self.in_flight_cause = {}
        if result.succeeded:
            self._succeed(result.reference, at=at)
        else:
            self._fail(result, trigger=trigger, plan=plan, at=at)
        return attempt_row

    def _succeed(self, reference: str, *, at: datetime) -> None:
        self.status = PaymentStatus.SUCCEEDED
        self.gateway_reference = reference
        self.paid_at = at
        self.next_retry_at = self.next_dunning_at = None
        self.failure_code = self.failure_message = ""
        self.record(
            ev.PaymentSucceeded(
                **self._base(),
                **self._person(),
                billing_reason=self.billing_reason,
                attempt=self.attempts,
                paid_at=at,
                gateway_reference=reference,
            ),
            at=at,
        )

    def _fail(self, result: PaymentResult, *, trigger: AttemptTrigger, plan: DunningPlan, at: datetime) -> None:
        self.status = PaymentStatus.FAILED
        self.failure_code, self.failure_message = result.failure_code, result.failure_message[:300]
        start_dunning = False
        if trigger in (AttemptTrigger.INITIAL, AttemptTrigger.RETRY):
            self.first_failed_at = self.first_failed_at or at
            self.scheduled_failures += 1
            self.next_retry_at = plan.next_retry(self.first_failed_at, self.scheduled_failures)
            start_dunning = self.next_retry_at is None and self.dunning_started_at is None
        self.record(
            ev.PaymentFailed(
                **self._base(),
                **self._person(),
                attempt=self.attempts,
                failure_code=result.failure_code,
                failure_message=result.failure_message,
                transient=result.transient,
                next_retry_at=self.next_retry_at,
                update_payment_method_url=self.update_payment_method_url,
            ),
            at=at,
        )
        if start_dunning:
            self.dunning_started_at = at
            self.next_dunning_at = plan.step_at(at, 1)
            self.record(ev.DunningStarted(**self._base(), started_at=at, next_step_at=self.next_dunning_at), at=at)

    def pay_with_credit(self, *, at: datetime) -> None:
        """Nothing is due (credit covered it): the payment succeeds without the gateway."""
        if self.amount.is_positive():
            raise InvalidTransition("Only a zero amount is settled without a charge.")
        if not self.can_attempt():
            raise InvalidTransition(f"This payment is {self.status}; there is nothing to collect.")
        self.attempts += 1
        self.payment_method = "account credit"
        self.record(ev.PaymentAttempted(**self._base(), attempt=self.attempts, payment_method="account credit"), at=at)
        self._succeed("", at=at)

    # -- dunning -----------------------------------------------------------------------
    def escalate(self, *, plan: DunningPlan, at: datetime) -> bool:
        """Take the next dunning step. Returns True when another charge should be tried."""
        if not self.in_dunning or self.exhausted_at is not None:
            raise InvalidTransition("This payment is not in dunning.")
        if self.next_dunning_at is None or self.next_dunning_at > at:
            raise InvalidTransition("No dunning step is due.")
        self.dunning_level += 1
        if self.dunning_level >= plan.steps:
            self.exhausted_at, self.next_dunning_at = at, None
            self.record(ev.DunningExhausted(**self._base(), exhausted_at=at), at=at)
            return False
        self.next_dunning_at = plan.step_at(self.dunning_started_at, self.dunning_level + 1)
        self.record(
            ev.DunningEscalated(
                **self._base(),
                **self._person(),
                level=self.dunning_level,
                final=self.dunning_level == plan.steps - 1,
                next_step_at=self.next_dunning_at,
                update_payment_method_url=self.update_payment_method_url,
            ),
            at=at,
        )
        return True

    def cancel(self, *, at: datetime) -> None:
        """The invoice was voided: stop collecting."""
        if self.status == PaymentStatus.SUCCEEDED:
            raise InvalidTransition("A succeeded payment is refunded, not cancelled.")
        if self.in_flight:
            raise PaymentInProgress("A charge of this payment is at the gateway; void the invoice once it answered.")
        self.status = PaymentStatus.CANCELLED
        self.next_retry_at = self.next_dunning_at = None


class DunningQueue(Payment):
    """Payments being chased: in their retry schedule, in dunning, or given up on (admin view)."""

    class Meta:
        proxy = True
        verbose_name = "dunning queue entry"
        verbose_name_plural = "dunning queue"

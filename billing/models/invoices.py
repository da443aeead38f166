"""The Invoice aggregate: Draft → Finalized → Paid | Voided.

Lines are appended while the invoice is a draft (plan, proration, usage,
discount), then tax (always one tax line, zero with a reason when exempt),
then finalisation takes a gapless number and the customer's credit (a credit
line) and freezes everything. Totals are sums of exact Money lines.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models

from billing import events as ev
from billing.models.invoice_lines import InvoiceLine, line_ref
from billing.values import BillingReason, InvoicePeriod, LineDraft, LineKind, TaxCalculation
from sharedkernel.aggregates import AggregateRoot
from sharedkernel.errors import DomainError, InvalidTransition
from sharedkernel.values import Money, money_from_minor


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft"
    FINALIZED = "finalized"
    PAID = "paid"
    VOIDED = "voided"


class NothingToInvoice(DomainError):
    code = "nothing_to_invoice"


class Invoice(AggregateRoot):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=30, unique=True, null=True, blank=True)
    customer_id = models.UUIDField(db_index=True)
    subscription_id = models.UUIDField(null=True, blank=True, db_index=True)
    billing_reason = models.CharField(max_length=30, choices=[(r.value, r.label) for r in BillingReason])
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT, db_index=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    # snapshots for the documents and the events people read
    customer_name = models.CharField(max_length=200)
    customer_email = models.EmailField()
    plan_name = models.CharField(max_length=100, blank=True)
    # totals, minor units
    subtotal_minor = models.BigIntegerField(default=0)
    tax_minor = models.BigIntegerField(default=0)
    total_minor = models.BigIntegerField(default=0)
    credit_applied_minor = models.BigIntegerField(default=0)
    amount_due_minor = models.BigIntegerField(default=0)
    amount_paid_minor = models.BigIntegerField(default=0)
    #: A renewal of a metered plan waits for the closed period's usage before tax.
    awaiting_usage = models.BooleanField(default=False)
    # tax
    tax_calculated = models.BooleanField(default=False)
    tax_rate = models.DecimalField(max_digits=6, decimal_places=5, null=True, blank=True)
    tax_jurisdiction = models.CharField(max_length=20, blank=True)
    tax_failures = models.PositiveIntegerField(default=0)
    tax_retry_at = models.DateTimeField(null=True, blank=True, db_index=True)
    tax_error = models.TextField(blank=True)
    # lifecycle
    created_at = models.DateTimeField()
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=300, blank=True)
    test_clock_id = models.UUIDField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Renewal is idempotent: one invoice per (subscription, period), whoever runs twice.
            models.UniqueConstraint(
                fields=["subscription_id", "period_start"],
                condition=models.Q(billing_reason__in=[r.value for r in BillingReason if r.recurring]),
                name="one_recurring_invoice_per_period",
            ),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {str(self.id)[:8]}"

    # -- reading -----------------------------------------------------------------------
    #: The invoice's amounts (each read as Money below), in the order staff and the API show them.
    TOTALS = ("subtotal", "tax", "total", "credit_applied", "amount_due", "amount_paid")
    subtotal = money_from_minor("subtotal_minor")
    tax = money_from_minor("tax_minor")
    total = money_from_minor("total_minor")
    credit_applied = money_from_minor("credit_applied_minor")
    amount_due = money_from_minor("amount_due_minor")
    amount_paid = money_from_minor("amount_paid_minor")

    def _ids(self) -> dict:
        """Which invoice, whose, of which subscription: the ids the invoice's events carry."""
        return {
            "invoice_id": str(self.id),
            "customer_id": str(self.customer_id),
            "subscription_id": str(self.subscription_id) if self.subscription_id else None,
        }

    @property
    def period(self) -> InvoicePeriod | None:
        return InvoicePeriod(self.period_start, self.period_end) if self.period_start and self.period_end else None

    @property
    def url(self) -> str:
        return f"{settings.SITE_URL.rstrip('/')}/billing/invoices/{self.id}/"

    @property
    def all_lines(self) -> list[InvoiceLine]:
        """Saved lines and those recorded since loading, in order."""
        saved = list(self.lines.all()) if not self._state.adding else []
        return saved + self._new_lines

    @property
    def _new_lines(self) -> list[InvoiceLine]:
        return self.__dict__.setdefault("_unsaved_lines", [])

    def take_new_lines(self) -> list[InvoiceLine]:
        """Lines to insert after the invoice row is saved."""
        lines = list(self._new_lines)
        self._new_lines.clear()
        return lines

    # -- Draft -------------------------------------------------------------------------
    @classmethod
    def draft(
        cls,
        *,
        customer_id: str,
        customer_name: str,
        customer_email: str,
        currency: str,
        billing_reason: BillingReason,
        lines: list[LineDraft],
        at: datetime,
        subscription_id: str | None = None,
        plan_name: str = "",
        period: InvoicePeriod | None = None,
        test_clock_id: str | None = None,
        awaiting_usage: bool = False,
    ) -> Invoice:
        """GenerateInvoice: a draft with its charge lines (no tax, no credit yet)."""
        if not lines:
            raise NothingToInvoice("An invoice needs at least one line.")
        for line in lines:
            if line.kind in (LineKind.TAX, LineKind.CREDIT):
                raise InvalidTransition(f"A {line.kind} line is added by the invoice itself, not by hand.")
            if line.amount.currency != currency:
                raise InvalidTransition(f"An invoice in {currency} cannot hold a line in {line.amount.currency}.")
        invoice = cls(
            id=uuid.uuid4(),
            customer_id=customer_id,
            subscription_id=subscription_id,
            billing_reason=billing_reason.value,
            currency=currency,
            customer_name=customer_name,
            customer_email=customer_email,
            plan_name=plan_name or "",
            period_start=period.start if period else None,
            period_end=period.end if period else None,
            created_at=at,
            test_clock_id=test_clock_id,
            awaiting_usage=awaiting_usage,
        )
        for line in lines:
            invoice._append(line)
        invoice._recompute()
        invoice.record(
            ev.InvoiceGenerated(
                **invoice._ids(),
                billing_reason=invoice.billing_reason,
                currency=currency,
                lines=[line_ref(line) for line in invoice._new_lines],
                subtotal=invoice.subtotal,
                period=ev.PeriodRef(period.start, period.end) if period else None,
            ),
            at=at,
        )
        return invoice

    def _append(self, line: LineDraft) -> InvoiceLine:
        row = InvoiceLine(
            invoice=self,
            position=len(self.all_lines) + 1,
            kind=line.kind.value,
            description=line.description,
            amount_minor=line.amount.minor_units,
            quantity=line.quantity,
            metric=line.metric or "",
        )
        self._new_lines.append(row)
        return row

    def _recompute(self) -> None:
        lines = self.all_lines
        by_kind = lambda *kinds: sum(line.amount_minor for line in lines if line.kind in kinds)  # noqa: E731
        self.subtotal_minor = by_kind(LineKind.PLAN, LineKind.PRORATION, LineKind.USAGE, LineKind.DISCOUNT)
        self.tax_minor = by_kind(LineKind.TAX)
        self.total_minor = self.subtotal_minor + self.tax_minor
        self.credit_applied_minor = -by_kind(LineKind.CREDIT)
        self.amount_due_minor = self.total_minor - self.credit_applied_minor

    def _require_draft(self, doing: str) -> None:
        if self.status != InvoiceStatus.DRAFT:
            raise InvalidTransition(f"Invoice {self} is {self.status}; only a draft can {doing}.")

    def add_line(self, line: LineDraft, *, at: datetime) -> None:
        """Add a charge line to a draft (late usage, a discount). Tax is computed again afterwards."""
        self._require_draft("take new lines")
        if line.kind in (LineKind.TAX, LineKind.CREDIT):
            raise InvalidTransition(f"A {line.kind} line is added by the invoice itself, not by hand.")
        if line.amount.currency != self.currency:
            raise InvalidTransition(f"An invoice in {self.currency} cannot hold a line in {line.amount.currency}.")
        if self.tax_calculated:
            raise InvalidTransition("Tax is already calculated; lines are added before tax.")
        row = self._append(line)
        self._recompute()
        self.record(
            ev.InvoiceLineItemAdded(
                **self._ids(),
                line=line_ref(row),
                subtotal=self.subtotal,
            ),
            at=at,
        )

    def add_usage(self, lines: list[LineDraft], *, at: datetime) -> None:
        """The closed period's usage is final: add its overage lines (if any); tax may follow."""
        self._require_draft("take usage")
        if not self.awaiting_usage:
            raise InvalidTransition(f"Invoice {self} is not waiting for usage.")
        for line in lines:
            if line.kind != LineKind.USAGE:
                raise InvalidTransition("Only usage lines are added when usage is calculated.")
            self.awaiting_usage = False  # add_line checks the draft is still open to lines
            self.add_line(line, at=at)
        self.awaiting_usage = False

    # -- tax ---------------------------------------------------------------------------
    def apply_tax(self, calculation: TaxCalculation, *, at: datetime) -> None:
        """CalculateTax: one tax line, zero with its reason when the customer is exempt."""
        self._require_draft("be taxed")
        if self.awaiting_usage:
            raise InvalidTransition(f"Invoice {self} waits for the period's usage before tax.")
        if self.tax_calculated:
            raise InvalidTransition(f"Tax of invoice {self} is already calculated.")
        if calculation.tax.currency != self.currency:
            raise InvalidTransition("Tax is in the invoice's currency.")
        self._append(LineDraft(LineKind.TAX, calculation.describe(), calculation.tax))
        self.tax_calculated = True
        self.tax_rate = calculation.rate
        self.tax_jurisdiction = calculation.jurisdiction
        self.tax_retry_at, self.tax_error = None, ""
        self._recompute()
        self.record(
            ev.TaxCalculated(
                **self._ids(),
                taxable_amount=self.taxable_amount,
                tax=calculation.tax,
                rate=calculation.rate,
                jurisdiction=calculation.jurisdiction,
                tax_name=calculation.name,
                exempt=calculation.exempt,
                exempt_reason=calculation.exempt_reason,
            ),
            at=at,
        )

    @property
    def taxable_amount(self) -> Money:
        return Money.from_minor(max(self.subtotal_minor, 0), self.currency)

    def tax_failed(self, error: str, *, at: datetime, backoff: list[timedelta]) -> None:
        """The calculator did not answer: stay a draft, say so, try again later (never invent a rate)."""
        self._require_draft("wait for tax")
        self.tax_failures += 1
        delay = backoff[min(self.tax_failures, len(backoff)) - 1]
        self.tax_retry_at = at + delay
        self.tax_error = error[:1000]
        self.record(
            ev.TaxCalculationFailed(
                invoice_id=str(self.id),
                customer_id=str(self.customer_id),
                error=self.tax_error,
                attempt=self.tax_failures,
                next_attempt_at=self.tax_retry_at,
            ),
            at=at,
        )

    # -- Finalized ---------------------------------------------------------------------
    def finalize(self, *, number: str, credit_available: Money, at: datetime) -> Money:
        """FinalizeInvoice: number it, pay what credit can, freeze it. Returns the credit used."""
        self._require_draft("be finalized")
        if not self.all_lines:
            raise InvalidTransition("An invoice without lines cannot be finalized.")
        if not self.tax_calculated:
            raise InvalidTransition("An invoice is finalized only after its tax is calculated.")
        if credit_available.currency != self.currency:
            raise InvalidTransition("Credit is used in the invoice's currency.")
        used = min(credit_available, self.total) if self.total.is_positive() else Money.zero(self.currency)
        if used.is_positive():
            self._append(LineDraft(LineKind.CREDIT, "Account credit applied", -used))
            self._recompute()
        self.number = number
        self.status = InvoiceStatus.FINALIZED
        self.issued_at = at
        self.record(
            ev.InvoiceFinalized(
                **self._ids(),
                number=number,
                customer_name=self.customer_name,
                customer_email=self.customer_email,
                plan_name=self.plan_name or None,
                billing_reason=self.billing_reason,
                currency=self.currency,
                lines=[line_ref(line) for line in self.all_lines],
                subtotal=self.subtotal,
                tax=self.tax,
                total=self.total,
                credit_applied=self.credit_applied,
                amount_due=self.amount_due,
                issued_at=at,
                url=self.url,
                period=ev.PeriodRef(self.period_start, self.period_end) if self.period else None,
            ),
            at=at,
        )
        return used

    # -- Paid | Voided -----------------------------------------------------------------
    def mark_paid(self, amount: Money, *, at: datetime) -> None:
        if self.status != InvoiceStatus.FINALIZED:
            raise InvalidTransition(f"Invoice {self} is {self.status}; only a finalized invoice is paid.")
        if amount != self.amount_due:
            raise InvalidTransition(f"Invoice {self} is due {self.amount_due}, not {amount}.")
        self.status = InvoiceStatus.PAID
        self.amount_paid_minor = amount.minor_units
        self.paid_at = at
        self.record(
            ev.InvoicePaid(
                **self._ids(),
                number=self.number,
                amount_paid=amount,
                paid_at=at,
            ),
            at=at,
        )

    def void(self, *, reason: str, at: datetime) -> None:
        """VoidInvoice: a draft or an unpaid finalized invoice will not be collected."""
        if self.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED):
            raise InvalidTransition(
                f"Invoice {self} is {self.status}; only a draft or an unpaid invoice can be voided."
            )
        if not reason.strip():
            raise InvalidTransition("Say why the invoice is voided.")
        self.status = InvoiceStatus.VOIDED
        self.voided_at, self.void_reason = at, reason.strip()
        self.tax_retry_at = None
        self.record(
            ev.InvoiceVoided(
                **self._ids(),
                number=self.number,
                reason=self.void_reason,
                voided_at=at,
            ),
            at=at,
        )

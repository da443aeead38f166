"""Time-driven work of the Billing context (beat, and test clocks through the same code).

billing.retry_payments   failed payments whose next retry (+1 h, +24 h, +72 h) is due
billing.escalate_dunning payments in dunning whose next step is due
billing.retry_tax        drafts waiting for the tax calculator
billing.resolve_charges  charges a crash left in flight, answered again by the gateway (same key)

Jobs that charge record the attempts in their batch's transaction and call the
gateway after it committed (DESIGN.md rule 7).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Min, QuerySet

from billing import commands
from billing.commands import Work, new_cause_for
from billing.models import AttemptTrigger, Invoice, InvoiceStatus, Payment, PaymentStatus
from sharedkernel.scheduling import in_scope, scheduled_job, work_in_flight

BATCH = 200


def _in_batches(due: QuerySet, now: datetime, run, *, then=None) -> int:
    """Run ``run`` over due rows in locked batches (rows another worker holds are skipped); ``then``
    gets what ``run`` returned once the batch's transaction committed (the outside calls)."""
    total = 0
    seen: set = set()
    while True:
        with transaction.atomic(durable=True):
            rows = list(
                due.exclude(pk__in=seen).select_for_update(skip_locked=True).values_list("pk", "test_clock_id")[:BATCH]
            )
            if not rows:
                return total
            seen.update(pk for pk, _ in rows)
            result = run([Work(str(pk), now, new_cause_for(clock)) for pk, clock in rows])
        if then is not None:
            then(result)
        total += len(rows)


def _attempt_again_when_due(name: str, due_at: str, trigger: AttemptTrigger):
    """The job that attempts failed payments again once their ``due_at`` time has come (a retry, a
    dunning step), each attempt recorded in its batch's transaction and charged after it committed."""

    def waiting(test_clock_id):
        return in_scope(
            Payment.objects.filter(status=PaymentStatus.FAILED, **{f"{due_at}__isnull": False}), test_clock_id
        )

    @scheduled_job(name, next_due=lambda scope: waiting(scope).aggregate(at=Min(due_at))["at"])
    def run(now: datetime, test_clock_id: str | None) -> int:
        return _in_batches(
            waiting(test_clock_id).filter(**{f"{due_at}__lte": now}),
            now,
            lambda work: commands.retry_many(work, trigger=trigger),
            then=commands.charge_in_flight,
        )

    return run


retry_payments = _attempt_again_when_due("billing.retry_payments", "next_retry_at", AttemptTrigger.RETRY)
escalate_dunning = _attempt_again_when_due("billing.escalate_dunning", "next_dunning_at", AttemptTrigger.DUNNING)


def _waiting_for_tax(test_clock_id):
    return in_scope(
        Invoice.objects.filter(status=InvoiceStatus.DRAFT, tax_calculated=False, tax_retry_at__isnull=False),
        test_clock_id,
    )


@scheduled_job(
    "billing.retry_tax",
    next_due=lambda scope: _waiting_for_tax(scope).aggregate(at=Min("tax_retry_at"))["at"],
)
def retry_tax(now: datetime, test_clock_id: str | None) -> int:
    """No lock and no transaction here: the quote is an outside call, and calculate_tax_many records each
    answer only if the draft is still untaxed and unchanged (two workers at once tax it once)."""
    due = _waiting_for_tax(test_clock_id).filter(tax_retry_at__lte=now)
    total, seen = 0, set()
    while True:
        rows = list(due.exclude(pk__in=seen).values_list("pk", "test_clock_id")[:BATCH])
        if not rows:
            return total
        seen.update(pk for pk, _ in rows)
        commands.calculate_tax_many([Work(str(pk), now, new_cause_for(clock)) for pk, clock in rows])
        total += len(rows)


@scheduled_job(
    "billing.resolve_charges",
    # on wall time, not the clock's: a stale attempt is a crashed worker, not a date in the billing story
    next_due=lambda scope: None,
)
def resolve_charges(now: datetime, test_clock_id: str | None) -> int:
    """Beat resolves every stale charge (a test clock's too: nobody may advance that clock again)."""
    return commands.resolve_stale_charges(
        older_than=timedelta(seconds=settings.BILLING_CHARGE_RESOLVE_AFTER_SECONDS), test_clock_id=test_clock_id
    )


def _scoped(query, test_clock_id: str | None):
    return query.filter(test_clock_id=test_clock_id) if test_clock_id else query


@work_in_flight("billing.charges")
def charges_in_flight(test_clock_id: str | None) -> bool:
    """A charge or refund is at the gateway (its answer not recorded yet)."""
    processing = Payment.objects.filter(status=PaymentStatus.PROCESSING)
    refunding = Payment.objects.filter(refund_in_flight_minor__isnull=False)
    return _scoped(processing, test_clock_id).exists() or _scoped(refunding, test_clock_id).exists()


@work_in_flight("billing.tax_quotes")
def tax_quotes_in_flight(test_clock_id: str | None) -> bool:
    """A draft's first tax quote was handed over after its handler committed, and is not recorded yet."""
    quoting = Invoice.objects.filter(
        status=InvoiceStatus.DRAFT,
        tax_calculated=False,
        awaiting_usage=False,
        tax_retry_at__isnull=False,
        tax_failures=0,
    )
    return _scoped(quoting, test_clock_id).exists()

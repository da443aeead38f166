"""Time-driven work of the Billing context (beat, and test clocks through the same code).

billing.retry_payments   failed payments whose next retry (+1 h, +24 h, +72 h) is due
billing.escalate_dunning payments in dunning whose next step is due
billing.retry_tax        drafts waiting for the tax calculator
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Min, QuerySet

from billing import commands
from billing.commands import Work, new_cause_for
from billing.models import AttemptTrigger, Invoice, InvoiceStatus, Payment, PaymentStatus
from sharedkernel.scheduling import in_scope, scheduled_job

BATCH = 200


def _in_batches(due: QuerySet, now: datetime, run) -> int:
    """Run ``run`` over due rows in locked batches (rows another worker holds are skipped)."""
    total = 0
    seen: set = set()
    while True:
        with transaction.atomic():
            rows = list(
                due.exclude(pk__in=seen).select_for_update(skip_locked=True).values_list("pk", "test_clock_id")[:BATCH]
            )
            if not rows:
                return total
            seen.update(pk for pk, _ in rows)
            run([Work(str(pk), now, new_cause_for(clock)) for pk, clock in rows])
        total += len(rows)


def _retries(test_clock_id):
    return in_scope(Payment.objects.filter(status=PaymentStatus.FAILED, next_retry_at__isnull=False), test_clock_id)


@scheduled_job(
    "billing.retry_payments",
    next_due=lambda scope: _retries(scope).aggregate(at=Min("next_retry_at"))["at"],
)
def retry_payments(now: datetime, test_clock_id: str | None) -> int:
    return _in_batches(
        _retries(test_clock_id).filter(next_retry_at__lte=now),
        now,
        lambda work: commands.retry_many(work, trigger=AttemptTrigger.RETRY),
    )


def _dunning(test_clock_id):
    return in_scope(Payment.objects.filter(status=PaymentStatus.FAILED, next_dunning_at__isnull=False), test_clock_id)


@scheduled_job(
    "billing.escalate_dunning",
    next_due=lambda scope: _dunning(scope).aggregate(at=Min("next_dunning_at"))["at"],
)
def escalate_dunning(now: datetime, test_clock_id: str | None) -> int:
    return _in_batches(
        _dunning(test_clock_id).filter(next_dunning_at__lte=now),
        now,
        lambda work: commands.retry_many(work, trigger=AttemptTrigger.DUNNING),
    )


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
    return _in_batches(_waiting_for_tax(test_clock_id).filter(tax_retry_at__lte=now), now, commands.calculate_tax_many)

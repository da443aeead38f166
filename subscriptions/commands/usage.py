"""Usage commands: RecordUsage at ingestion speed, and the close of a period.

Ingestion takes up to 1,000 records per call and costs a handful of SQL statements whatever the size
(the repository, :mod:`subscriptions.infrastructure.usage_repository`). Counters are updated in the same
transaction, so the usage endpoint is fresh as soon as the call returns. Which thresholds a batch
crossed is the usage aggregate's decision (:class:`subscriptions.models.usage.UsageMeter`).

When a period ends (renewal or cancellation at period end) a UsagePeriod waits
``USAGE_GRACE_SECONDS`` for late records, then ``UsageCalculated`` gives Billing the final totals and overage.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db import transaction

from sharedkernel.clock import clock_for
from sharedkernel.commands import command
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.eventstore import append_batch
from subscriptions.infrastructure import usage_repository
from subscriptions.models import PlanOverageRate, Subscription, SubscriptionStatus, UsageCounter, UsagePeriod
from subscriptions.models.usage import Refusal, UsageMeter, grace
from subscriptions.usage_parsing import IngestResult, parse_record


@command(
    aggregate="UsageCounter",
    records=("subscriptions.UsageRecorded", "subscriptions.UsageThresholdReached", "subscriptions.UsageQuotaExceeded"),
    own_transaction=False,
)
def record_usage(records: list, *, customer_id: str | None = None) -> IngestResult:
    """RecordUsage for a batch → UsageRecorded, and UsageThresholdReached / UsageQuotaExceeded for each
    counter that crossed 80 % / 100 % of its included quantity. ``customer_id`` limits it to that
    customer's subscriptions (a customer's API key); staff pass None. Valid records are kept even when
    others fail; the records, counters and events commit in one short transaction of its own."""
    result = IngestResult()
    parsed = [(i, p) for i, raw in enumerate(records) if (p := parse_record(i, raw, result)) is not None]
    subs = usage_repository.metered_subscriptions({p[0] for _, p in parsed})
    now_of: dict[str | None, datetime] = {}
    rows = []
    for index, (sub_id, metric, quantity, at, key) in parsed:
        sub = subs.get(sub_id)
        if sub is None or (customer_id is not None and sub.customer_id != str(customer_id)):
            result.refuse(index, "subscription", "not_found", "No such subscription.")
            continue
        if (refusal := sub.refuses(metric)) is not None:
            result.refuse(index, *refusal)
            continue
        if sub.test_clock_id not in now_of:
            now_of[sub.test_clock_id] = clock_for(sub.test_clock_id).now()
        now = now_of[sub.test_clock_id]
        period_start = sub.period_for(at, now)
        if isinstance(period_start, Refusal):
            result.refuse(index, *period_start)
            continue
        rows.append((sub_id, metric, quantity, at, period_start, key, now))
    if rows:
        with transaction.atomic():
            result.accepted, sums, after = usage_repository.count(rows)
            result.duplicates = len(rows) - result.accepted
            if events := UsageMeter(subs, now_of).events(
                accepted=result.accepted, duplicates=result.duplicates, sums=sums, after=after
            ):
                append_batch([(current_cause(), events)])
    result.errors.sort(key=lambda e: e["index"])
    return result


def open_usage_periods(subs: list[Subscription], closing: dict) -> None:
    """After renewals or ends at period end: metered periods wait for late usage, then close (no event).

    Metered: the plan's current terms have overage rates (Billing then holds the renewal invoice for
    the usage) or the subscription's own version has (a grandfathered one keeps its overage; billed
    on an invoice of its own when the renewal was not held)."""
    metered_plans = set(
        PlanOverageRate.objects.filter(plan_id__in={s.plan_id for s in subs}).values_list("plan_id", flat=True)
    )
    terms = usage_repository.usage_terms({(str(s.plan_id), s.plan_version) for s in subs})
    metered = {s.pk for s in subs if s.plan_id in metered_plans or terms[(str(s.plan_id), s.plan_version)].rates}
    UsagePeriod.objects.bulk_create(
        [
            UsagePeriod(
                subscription=sub,
                period_start=closing[sub.pk][0],
                period_end=closing[sub.pk][1],
                final=sub.status == SubscriptionStatus.CANCELLED,
                due_at=closing[sub.pk][1] + grace(),
                test_clock_id=sub.test_clock_id,
            )
            for sub in subs
            if sub.pk in metered
        ],
        ignore_conflicts=True,
    )


@command(aggregate="UsagePeriod", records=("subscriptions.UsageCalculated",), own_transaction=False)
def calculate_due_periods(due, now: datetime) -> int:
    """UsageCalculated for periods whose grace window has passed (a locked batch, its own transaction),
    each on the terms of the version its subscription is billed on (grandfathered ones keep theirs)."""
    with transaction.atomic():
        periods = list(due.select_for_update(of=("self",), skip_locked=True).select_related("subscription__plan")[:500])
        if not periods:
            return 0
        counters = defaultdict(dict)
        for sub_id, start, metric, used in UsageCounter.objects.filter(
            subscription_id__in={p.subscription_id for p in periods}
        ).values_list("subscription_id", "period_start", "metric", "used"):
            counters[(sub_id, start)][metric] = used
        terms = usage_repository.usage_terms(
            {(str(p.subscription.plan_id), p.subscription.plan_version) for p in periods}
        )
        groups = [
            (
                Cause(new_correlation_id(), None, period.clock_id),
                [
                    period.calculate(
                        used=counters[(period.subscription_id, period.period_start)],
                        terms=terms[(str(period.subscription.plan_id), period.subscription.plan_version)],
                        now=now,
                    )
                ],
            )
            for period in periods
        ]
        UsagePeriod.objects.filter(pk__in=[p.pk for p in periods]).update(calculated_at=now)
        append_batch(groups)
        return len(periods)

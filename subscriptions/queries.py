"""Read models of the Subscriptions context.

* SubscriptionSummary — what a customer sees on their dashboard: plan, status,
  next billing date, trial days left.
* PlanCatalog — the plans on offer, with prices, shown at sign-up and plan change.
* Timeline — a subscription's events and every event they led to (the API's events list).
* Usage — used, included and overage per metric of a period (MetricUse), and the history for the chart.
* Price migrations — the subscriptions a migration selects, its decision for each, the outcome
  counts and the preview (who, how much, when), the same decisions its batches make.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Q, QuerySet

from sharedkernel.clock import SystemClock, clock_for
from sharedkernel.errors import DomainError
from sharedkernel.lineage import lineage
from sharedkernel.models import StoredEvent, TestClock
from sharedkernel.values import Money, UnitRate
from subscriptions.infrastructure.usage_repository import usage_terms
from subscriptions.models import (
    Customer,
    ItemOutcome,
    Plan,
    PlanPrice,
    PlanVersion,
    PriceChangeDecision,
    PriceMigration,
    Subscription,
    SubscriptionStatus,
    UsageCounter,
)
from subscriptions.rules import PlanChangePolicy
from subscriptions.values import BillingInterval, PlanTier, TrialDuration


@dataclass(frozen=True)
class SubscriptionSummary:
    id: str
    plan_name: str
    plan_code: str
    tier: str
    interval: str
    status: str
    status_label: str
    price: Money
    next_billing_date: datetime | None
    trial_end: datetime | None
    trial_days_left: int | None
    cancel_at_period_end: bool
    ends_at: datetime | None
    cancelled_at: datetime | None
    pending_plan_name: str | None
    suspension_reason: str
    version: int
    meters_usage: bool = False
    plan_version: int = 1
    #: A scheduled price change: the coming price and the renewal it takes effect at.
    coming_price: Money | None = None
    coming_price_at: datetime | None = None

    @property
    def can_cancel(self) -> bool:
        return self.status != SubscriptionStatus.CANCELLED

    @property
    def can_resume(self) -> bool:
        return self.cancel_at_period_end and self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)

    @property
    def can_change_plan(self) -> bool:
        return self.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING) and not self.pending_plan_name


def summarize(sub: Subscription, now: datetime) -> SubscriptionSummary:
    trialing = sub.status == SubscriptionStatus.TRIALING
    billing_continues = (
        sub.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING) and not sub.cancel_at_period_end
    )
    return SubscriptionSummary(
        id=str(sub.pk),
        plan_name=sub.plan.name,
        plan_code=sub.plan.code,
        tier=sub.plan.tier,
        interval=sub.interval,
        status=sub.status,
        status_label=sub.get_status_display(),
        price=sub.price,
        next_billing_date=sub.current_period_end if billing_continues else None,
        trial_end=sub.trial_end if trialing else None,
        trial_days_left=TrialDuration.days_left(sub.trial_end, now) if trialing else None,
        cancel_at_period_end=sub.cancel_at_period_end,
        ends_at=sub.current_period_end if sub.cancel_at_period_end else None,
        cancelled_at=sub.cancelled_at,
        pending_plan_name=sub.pending_plan.name if sub.pending_plan_id else None,
        suspension_reason=sub.get_suspension_reason_display() if sub.suspension_reason else "",
        version=sub.version,
        meters_usage=bool(sub.plan.included_usage),
        plan_version=sub.plan_version,
        coming_price=sub.scheduled_price,
        coming_price_at=sub.scheduled_effective_at,
    )


def subscription_summaries(customer: Customer) -> list[SubscriptionSummary]:
    now = clock_for(customer.test_clock_id).now()
    subs = customer.subscriptions.select_related("plan", "pending_plan").order_by("status", "-created_at")
    return [summarize(sub, now) for sub in subs]


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    code: str
    name: str
    tier: str
    interval: str
    trial_days: int
    price: Money
    features: list[str]
    included_usage: dict[str, int]


def plan_catalog(currency: str) -> list[CatalogEntry]:
    """Plans on offer in ``currency``, cheapest tier first."""
    entries = []
    for plan in Plan.objects.filter(archived=False).prefetch_related("price_rows"):
        price = plan.price_in(currency)
        if price is None:
            continue
        entries.append(
            CatalogEntry(
                id=str(plan.pk),
                code=plan.code,
                name=plan.name,
                tier=plan.tier,
                interval=plan.interval,
                trial_days=plan.trial_days,
                price=price,
                features=list(plan.features),
                included_usage=dict(plan.included_usage),
            )
        )
    return sorted(entries, key=lambda e: (e.interval, PlanTier(e.tier).rank, e.price.amount))


def catalog_currencies() -> list[str]:
    return sorted(set(PlanPrice.objects.filter(plan__archived=False).values_list("currency", flat=True)))


def timeline(sub: Subscription) -> QuerySet[StoredEvent]:
    """The subscription's events, its usage counters' and closed usage periods' (thresholds, the
    usage calculated for a period), and every event they led to — invoices, payments and each
    attempt, dunning, e-mails, webhook deliveries — in stored order (sharedkernel.lineage)."""
    counters = UsageCounter.objects.filter(subscription_id=sub.pk).values_list("pk", flat=True)
    periods = sub.usage_periods.values_list("pk", flat=True)
    related = [*(("UsageCounter", str(pk)) for pk in counters), *(("UsagePeriod", str(pk)) for pk in periods)]
    return StoredEvent.objects.filter(position__in=lineage(str(sub.pk), related=related)).order_by("position")


@dataclass(frozen=True)
class PlanChangeOutlook:
    """What ChangePlan would do now: refused (``refused_code`` and why), waiting for staff
    approval, or changed at once. The same aggregate method and policy the command runs."""

    refused_code: str = ""
    message: str = ""
    needs_approval: bool = False
    direction: str = ""


def plan_change_outlook(*, subscription_id: str, plan_id: str) -> PlanChangeOutlook:
    sub = Subscription.objects.select_related("plan").filter(pk=subscription_id).first()
    target = Plan.objects.prefetch_related("price_rows").filter(pk=plan_id).first()
    if sub is None or target is None:
        return PlanChangeOutlook(refused_code="not_found", message="No such subscription or plan.")
    try:
        decision = sub.decide_plan_change(target=target, policy=PlanChangePolicy())
    except DomainError as exc:
        return PlanChangeOutlook(refused_code=exc.code, message=exc.message)
    return PlanChangeOutlook(needs_approval=decision.needs_approval, direction=decision.direction.value)


# -- usage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricUse:
    metric: str
    used: int
    included: int
    rate: UnitRate | None

    @property
    def overage(self) -> int:
        return max(0, self.used - self.included)

    @property
    def overage_amount(self) -> Money | None:
        return self.rate.charge(self.overage) if self.rate is not None else None

    @property
    def percent(self) -> int:
        return round(100 * self.used / self.included) if self.included else 0


def usage_of(sub: Subscription, period_start: datetime | None = None) -> list[MetricUse]:
    """Used, included and overage per metric of the subscription's plan version, for the open period (or another)."""
    start = period_start or sub.current_period_start
    used = dict(UsageCounter.objects.filter(subscription_id=sub.pk, period_start=start).values_list("metric", "used"))
    terms = usage_terms({(str(sub.plan_id), sub.plan_version)})[(str(sub.plan_id), sub.plan_version)]
    metrics = sorted(set(terms.included) | set(used))
    return [
        MetricUse(m, int(used.get(m, 0)), int(terms.included.get(m, 0)), terms.rate(sub.currency, m)) for m in metrics
    ]


def usage_history(sub: Subscription, periods: int = 6) -> list[tuple[datetime, dict[str, int]]]:
    """Totals per metric for the last ``periods`` periods, oldest first (for the chart)."""
    by_period: dict[datetime, dict[str, int]] = defaultdict(dict)
    for metric, start, used in UsageCounter.objects.filter(subscription_id=sub.pk).values_list(
        "metric", "period_start", "used"
    ):
        by_period[start][metric] = used
    return sorted(by_period.items())[-periods:]


# -- price migrations: the selection, its decisions, and the preview ----------------------------


def selected(migration: PriceMigration) -> QuerySet:
    """The live subscriptions the migration selects (left-out reasons are decided per subscription)."""
    query = Subscription.objects.filter(plan_id=migration.plan_id).exclude(status=SubscriptionStatus.CANCELLED)
    if migration.from_versions:
        query = query.filter(plan_version__in=migration.from_versions)
    else:
        query = query.filter(~Q(plan_version=migration.to_version))
    if migration.currencies:
        query = query.filter(currency__in=migration.currencies)
    if migration.subscription_ids:
        query = query.filter(pk__in=migration.subscription_ids)
    if migration.created_before:
        query = query.filter(created_at__lt=migration.created_before)
    return query


def clock_times(subs: list[Subscription], now: datetime) -> dict:
    clocks = {s.test_clock_id for s in subs if s.test_clock_id}
    times = dict(TestClock.objects.filter(pk__in=clocks).values_list("pk", "frozen_time")) if clocks else {}
    return {s.pk: times.get(s.test_clock_id, now) if s.test_clock_id else now for s in subs}


def decisions(
    migration: PriceMigration, subs: list[Subscription], now: datetime
) -> list[tuple[Subscription, PriceChangeDecision]]:
    target = PlanVersion.objects.get(plan_id=migration.plan_id, version=migration.to_version)
    times = clock_times(subs, now)
    notice = settings.PRICE_CHANGE_NOTICE_DAYS
    return [(s, migration.decide(s, target=target, now=times[s.pk], notice_days=notice)) for s in subs]


def outcome_counts(migration: PriceMigration) -> dict[str, int]:
    counts = dict(migration.items.values_list("outcome").annotate(n=Count("id")))
    return {o.value: counts.get(o.value, 0) for o in ItemOutcome}


def price_migration_preview(migration: PriceMigration, *, now: datetime | None = None) -> dict:
    """Who, how much and when — the same decisions the batches make, written nowhere."""
    now = now or SystemClock().now()
    subs = list(selected(migration).select_related("plan").order_by("pk"))
    moved, left_out = [], []
    mrr: dict[str, Money] = {}
    for sub, decision in decisions(migration, subs, now):
        if not decision.moves:
            left_out.append({"subscription": str(sub.pk), "reason": decision.reason})
            continue
        moved.append(decision.effective_at)
        change = decision.monthly_change
        if sub.interval == BillingInterval.YEAR:
            change = Money((change.amount / 12).quantize(change.amount), change.currency)
        mrr[sub.currency] = mrr.get(sub.currency, Money.zero(sub.currency)) + change
    return {
        "subscriptions": len(moved),
        "left_out": left_out,
        "mrr_change": [m for _, m in sorted(mrr.items())],
        "first_effective_at": min(moved) if moved else None,
        "last_effective_at": max(moved) if moved else None,
    }

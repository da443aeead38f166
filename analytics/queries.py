"""Read side of Analytics: MRR over time, revenue by period, churn, breakdowns, at-risk list."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from dateutil.relativedelta import relativedelta
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncMonth, TruncQuarter, TruncYear

from analytics.models import CustomerName, MrrMovement, MrrSnapshot, RevenueEntry, SubscriptionView
from analytics.vocabulary import RevenueKind, Status
from sharedkernel.values import Money


def currencies() -> list[str]:
    found = set(SubscriptionView.objects.values_list("currency", flat=True).distinct())
    found |= set(RevenueEntry.objects.values_list("currency", flat=True).distinct())
    return sorted(found)


def current_mrr(currency: str) -> Money:
    total = SubscriptionView.objects.filter(currency=currency).aggregate(s=Sum("mrr_minor"))["s"] or 0
    return Money.from_minor(total, currency)


@dataclass(frozen=True)
class MrrDay:
    day: date
    mrr: Money
    movements: dict[str, Money]


def mrr_series(currency: str) -> list[MrrDay]:
    """MRR at the end of each day with a movement, with that day's movements by kind (from the movements,
    so the series is the same however the events were processed)."""
    by_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for day, kind, amount in (
        MrrMovement.objects.filter(currency=currency)
        .values_list("day", "kind")
        .annotate(a=Sum("amount_minor"))
        .order_by("day")
    ):
        by_day[day][kind] += amount
    series, running = [], 0
    for day in sorted(by_day):
        running += sum(by_day[day].values())
        series.append(
            MrrDay(
                day,
                Money.from_minor(running, currency),
                {k: Money.from_minor(v, currency) for k, v in by_day[day].items()},
            )
        )
    return series


def movements_by_month(currency: str) -> list[dict]:
    rows = defaultdict(lambda: defaultdict(int))
    for month, kind, amount in (
        MrrMovement.objects.filter(currency=currency)
        .annotate(m=TruncMonth("day"))
        .values_list("m", "kind")
        .annotate(a=Sum("amount_minor"))
        .order_by("m")
    ):
        rows[month][kind] += amount
    return [
        {"month": m, **{k: Money.from_minor(rows[m].get(k, 0), currency) for k in MrrMovement.Kind.values}}
        for m in sorted(rows)
    ]


def write_snapshots() -> int:
    """Materialise the daily MRR snapshots from the movements (idempotent)."""
    rows = []
    for currency in currencies():
        for point in mrr_series(currency):
            rows.append(MrrSnapshot(day=point.day, currency=currency, mrr_minor=point.mrr.minor_units))
    MrrSnapshot.objects.all().delete()
    MrrSnapshot.objects.bulk_create(rows)
    return len(rows)


TRUNC = {"month": TruncMonth, "quarter": TruncQuarter, "year": TruncYear}


def revenue(group: str = "month") -> list[dict]:
    """Payments net of refunds per period × plan × currency."""
    trunc = TRUNC[group]
    rows = (
        RevenueEntry.objects.annotate(period=trunc("day"))
        .values("period", "plan_name", "currency")
        .annotate(net=Sum("amount_minor"), refunds=Sum("amount_minor", filter=Q(kind=RevenueKind.REFUND)))
        .order_by("period", "plan_name", "currency")
    )
    return [
        {
            "period": r["period"],
            "plan": r["plan_name"],
            "currency": r["currency"],
            "revenue": Money.from_minor(r["net"], r["currency"]),
            "refunds": Money.from_minor(-(r["refunds"] or 0), r["currency"]),
        }
        for r in rows
    ]


@dataclass(frozen=True)
class ChurnMonth:
    month: date
    active_at_start: int
    cancelled: int

    @property
    def rate(self) -> float:
        return self.cancelled / self.active_at_start if self.active_at_start else 0.0


def churn(months: int = 12, today: date | None = None) -> list[ChurnMonth]:
    """Per month: subscriptions cancelled in it ÷ subscriptions active (paying) at its start."""
    views = list(
        SubscriptionView.objects.filter(activated_at__isnull=False).values_list("activated_at", "cancelled_at")
    )
    if not views:
        return []
    first = min(a for a, _ in views).date().replace(day=1)
    latest = [(c or a).date() for a, c in views]
    latest += [
        d
        for d in (RevenueEntry.objects.aggregate(d=Max("day"))["d"], MrrMovement.objects.aggregate(d=Max("day"))["d"])
        if d
    ]
    last = (today or max(latest)).replace(day=1)
    out, month = [], first
    while month <= last:
        end = month + relativedelta(months=1)
        active = sum(1 for a, c in views if a.date() < month and (c is None or c.date() >= month))
        cancelled = sum(1 for a, c in views if c is not None and month <= c.date() < end and a.date() < c.date())
        out.append(ChurnMonth(month, active, cancelled))
        month = end
    return out[-months:]


def by_plan_and_status() -> list[dict]:
    return list(
        SubscriptionView.objects.values("plan_name", "status").annotate(n=Count("pk")).order_by("plan_name", "status")
    )


def at_risk(limit: int = 20) -> list[SubscriptionView]:
    live = SubscriptionView.objects.exclude(status=Status.CANCELLED).filter(
        Q(failed_payments__gt=0) | Q(dunning_level__gt=0) | Q(downgrades__gt=0) | Q(usage_last_period__gt=0)
    )
    risky = sorted((v for v in live if v.churn_risk > 0), key=lambda v: -v.churn_risk)[:limit]
    names = {c.customer_id: c for c in CustomerName.objects.filter(pk__in=[v.customer_id for v in risky])}
    for view in risky:
        view.customer = names.get(view.customer_id)  # None for a customer registered before the projection
    return risky

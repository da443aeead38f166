"""Usage: RecordUsage at ingestion speed, running totals, thresholds, and the close of a period.

Ingestion takes up to 1,000 records per call and costs a handful of SQL
statements whatever the size: one read of the subscriptions involved (and one of
their plans), one statement that inserts the records with ``ON CONFLICT DO
NOTHING`` (a repeated idempotency key is a duplicate, never counted twice) and
hands what it inserted to the upsert of the per-period counters, and one event
append. Counters are updated in the same transaction, so the usage endpoint is
fresh as soon as the call returns. Crossing 80 % / 100 % of a metric's included
quantity is detected from the counter before and after the upsert, so each
threshold fires once per period even under concurrent calls.

When a period ends (renewal or cancellation at period end) a UsagePeriod waits
``USAGE_GRACE_SECONDS`` for late records, then ``UsageCalculated`` gives Billing
the final totals and overage.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from sharedkernel.aggregates import RecordedEvent
from sharedkernel.bulk import bound_cursor
from sharedkernel.clock import clock_for
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.eventstore import append_batch
from sharedkernel.values import Money, UnitRate
from subscriptions import events as ev
from subscriptions.models import (
    Plan,
    PlanOverageRate,
    PlanVersion,
    Subscription,
    SubscriptionStatus,
    UsageCounter,
    UsagePeriod,
    UsageRecord,
)
from subscriptions.values import MAX_QUANTITY, BillingInterval, SubscriptionPeriod

MAX_BATCH = 1000
THRESHOLDS = (80, 100)
FUTURE_SKEW = timedelta(minutes=5)


def grace() -> timedelta:
    return timedelta(seconds=getattr(settings, "USAGE_GRACE_SECONDS", 3600))


@dataclass(frozen=True)
class UsageTerms:
    """What a plan version includes per period and charges per unit over it."""

    included: dict[str, int]
    rates: dict[tuple[str, str], UnitRate]  #: (currency, metric) → unit rate

    def rate(self, currency: str, metric: str) -> UnitRate | None:
        return self.rates.get((currency, metric))


def usage_terms(plan_versions: set[tuple[str, int]]) -> dict[tuple[str, int], UsageTerms]:
    """The usage terms of each (plan id, version): a subscription is metered and billed on the terms
    of the version it is billed on, so a grandfathered one keeps its included quantities and rates
    until a price migration moves it. One query (two for a version with no row, which falls back to
    the plan's current terms)."""
    plan_versions = {(str(p), int(v)) for p, v in plan_versions}
    terms: dict[tuple[str, int], UsageTerms] = {}
    for plan_id, version, included, rates in PlanVersion.objects.filter(
        plan_id__in={p for p, _ in plan_versions}
    ).values_list("plan_id", "version", "included_usage", "overage_rates"):
        if (key := (str(plan_id), version)) in plan_versions:
            terms[key] = UsageTerms(
                {m: int(q) for m, q in (included or {}).items()},
                {
                    (rate.currency, metric): rate
                    for metric, rows in (rates or {}).items()
                    for rate in map(UnitRate.from_json, rows)
                },
            )
    if missing := {plan_id for plan_id, _ in plan_versions - set(terms)}:
        current = {}
        for plan_id, included in Plan.objects.filter(pk__in=missing).values_list("pk", "included_usage"):
            current[str(plan_id)] = UsageTerms(dict(included or {}), {})
        for plan_id, metric, currency, amount in PlanOverageRate.objects.filter(plan_id__in=missing).values_list(
            "plan_id", "metric", "currency", "amount"
        ):
            current[str(plan_id)].rates[(currency, metric)] = UnitRate(amount, currency)
        for key in plan_versions - set(terms):
            terms[key] = current.get(key[0], UsageTerms({}, {}))
    return terms


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    errors: list[dict] = field(default_factory=list)

    def refuse(self, index: int, field_name: str, code: str, message: str) -> None:
        self.errors.append({"index": index, "field": field_name, "code": code, "message": message})


@dataclass
class _Open:
    """What ingestion needs to know of a subscription."""

    customer_id: str
    status: str
    period_start: datetime
    period_end: datetime
    anchor: datetime
    index: int
    interval: str
    included: dict
    test_clock_id: str | None

    @property
    def previous_start(self) -> datetime | None:
        if self.index == 0:
            return None
        return SubscriptionPeriod.nth(self.anchor, BillingInterval(self.interval), self.index - 1).start


def _subscriptions(ids: set[str]) -> dict[str, _Open]:
    """One query for the batch's subscriptions (ids as one array parameter), one for their versions' terms.
    On PostgreSQL ids come back as text and times as epoch microseconds: parsing a thousand
    timestamps and UUIDs per call would cost more than the query."""
    table = Subscription._meta.db_table
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        text, micros = "{}::text".format, "(extract(epoch FROM {}) * 1000000)::int8".format
        cursor_of, where, params = bound_cursor, "id = ANY(%b::text[]::uuid[])", [list(ids)]
    else:
        text = micros = "{}".format
        cursor_of = lambda c: c.cursor()  # noqa: E731
        where, params = f"id IN ({', '.join(['%s'] * len(ids))})", [uuid.UUID(i).hex for i in ids]
    with cursor_of(connection) as cursor:
        cursor.execute(
            f"SELECT {text('id')}, {text('customer_id')}, status, {micros('current_period_start')}, "
            f"{micros('current_period_end')}, {micros('billing_anchor')}, period_index, interval, {text('plan_id')}, "
            f"{text('test_clock_id')}, plan_version FROM {table} WHERE {where}",
            params,
        )
        rows = cursor.fetchall()
    as_text = str if connection.vendor == "postgresql" else (lambda v: str(_as_uuid(v)))
    terms = usage_terms({(as_text(r[8]), r[10]) for r in rows})
    times: dict = {}  # a batch's subscriptions share few distinct period bounds: convert each once
    opened = {}
    for pk, customer, status, start, end, anchor, index, interval, plan, clock, version in rows:
        for value in (start, end, anchor):
            if value not in times:
                times[value] = _time(value)
        opened[as_text(pk)] = _Open(
            as_text(customer),
            status,
            times[start],
            times[end],
            times[anchor],
            index,
            interval,
            terms[(as_text(plan), version)].included,
            as_text(clock) if clock else None,
        )
    return opened


def _as_uuid(value) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(value) -> datetime:
    if isinstance(value, int):  # PostgreSQL: epoch microseconds
        return _EPOCH + timedelta(microseconds=value)
    if isinstance(value, str):  # SQLite hands back text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


#: A subscription id as PostgreSQL prints it; any other spelling goes through ``uuid.UUID``.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch


def _parse(index: int, raw, result: IngestResult):
    """One record checked field by field, in a fixed order (the first failing field is the one
    reported). A thousand of these run per call, so the common case takes the shortest path."""
    if not isinstance(raw, dict):
        result.refuse(index, "", "invalid", "Each record is an object.")
        return None
    sub_id = raw.get("subscription")
    if type(sub_id) is not str or _CANONICAL_UUID(sub_id) is None:
        try:
            sub_id = str(uuid.UUID(str(sub_id)))
        except ValueError:
            result.refuse(index, "subscription", "invalid", "subscription must be a subscription id.")
            return None
    metric, key, quantity, stamp = (
        raw.get("metric"),
        raw.get("idempotency_key"),
        raw.get("quantity"),
        raw.get("timestamp"),
    )
    if not isinstance(metric, str) or not metric:
        result.refuse(index, "metric", "required", "metric is required.")
        return None
    if not isinstance(key, str) or not 0 < len(key) <= 100:
        result.refuse(index, "idempotency_key", "required", "idempotency_key is a string of 1–100 characters.")
        return None
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        result.refuse(index, "quantity", "invalid", "quantity is a whole number.")
        return None
    if quantity < 0:
        result.refuse(index, "quantity", "negative", "quantity must not be negative.")
        return None
    if quantity > MAX_QUANTITY:
        result.refuse(index, "quantity", "too_large", f"quantity is at most {MAX_QUANTITY:,} per record.")
        return None
    try:
        at = datetime.fromisoformat(stamp if type(stamp) is str else str(stamp))
    except ValueError:
        result.refuse(index, "timestamp", "invalid", "timestamp is an ISO 8601 time with offset.")
        return None
    if at.tzinfo is None:
        result.refuse(index, "timestamp", "invalid", "timestamp needs a UTC offset.")
        return None
    return sub_id, metric, quantity, at, key


def record_usage(records: list, *, customer_id: str | None = None) -> IngestResult:
    """RecordUsage for a batch. ``customer_id`` limits it to that customer's subscriptions
    (a customer's API key); staff pass None. Valid records are kept even when others fail."""
    result = IngestResult()
    parsed = [(i, p) for i, raw in enumerate(records) if (p := _parse(i, raw, result)) is not None]
    subs = _subscriptions({p[0] for _, p in parsed})
    now_of: dict[str | None, datetime] = {}
    rows = []
    for index, (sub_id, metric, quantity, at, key) in parsed:
        sub = subs.get(sub_id)
        if sub is None or (customer_id is not None and sub.customer_id != str(customer_id)):
            result.refuse(index, "subscription", "not_found", "No such subscription.")
            continue
        if sub.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            result.refuse(
                index, "subscription", "not_billable", f"The subscription is {sub.status}; usage is not recorded."
            )
            continue
        if metric not in sub.included:
            known = ", ".join(sorted(sub.included)) or "none"
            result.refuse(
                index, "metric", "unknown_metric", f"The plan does not meter {metric!r} (it meters: {known})."
            )
            continue
        if sub.test_clock_id not in now_of:
            now_of[sub.test_clock_id] = clock_for(sub.test_clock_id).now()
        now = now_of[sub.test_clock_id]
        if at > now + FUTURE_SKEW:
            result.refuse(index, "timestamp", "in_future", "The timestamp is in the future.")
            continue
        if sub.period_start <= at < sub.period_end:
            period_start = sub.period_start
        elif (
            sub.previous_start is not None
            and sub.previous_start <= at < sub.period_start
            and now < sub.period_start + grace()
        ):
            period_start = sub.previous_start  # late usage of the closed period, within its grace window
        else:
            result.refuse(
                index,
                "timestamp",
                "outside_period",
                f"The timestamp is outside the open period ({sub.period_start:%Y-%m-%d %H:%M} – "
                f"{sub.period_end:%Y-%m-%d %H:%M} UTC) and its grace window.",
            )
            continue
        rows.append((sub_id, metric, quantity, at, period_start, key, now))
    if rows:
        with transaction.atomic():
            result.accepted, sums, after = _record(rows)
            result.duplicates = len(rows) - result.accepted
            _publish(sums, after, subs, result, now_of)
    result.errors.sort(key=lambda e: e["index"])
    return result


def _record(rows) -> tuple[int, dict[tuple, int], dict[tuple, tuple[int, int]]]:
    """Insert the records, skipping known keys, and add what was inserted to the counters. Returns
    how many were inserted, the sum added per (subscription, metric, period start), and per key the
    counter's id and total after the addition."""
    first = {}
    for row in rows:  # a key repeated within the batch is a duplicate of its first use
        first.setdefault((row[0], row[5]), row)
    rows = sorted(first.values(), key=lambda r: (r[0], r[5]))  # one lock order for every request
    if connection.vendor != "postgresql":
        return _record_row_by_row(rows)
    with bound_cursor(connection) as cursor:
        # One statement, one round trip: the insert hands its rows to the counters' upsert. Ids travel as
        # text (PostgreSQL parses them faster than Python builds UUIDs); counters are upserted in key
        # order, so concurrent batches take their row locks in one order and never deadlock.
        cursor.execute(
            f"WITH ins AS (INSERT INTO {UsageRecord._meta.db_table} "
            "(subscription_id, metric, quantity, timestamp, period_start, idempotency_key, recorded_at) "
            "SELECT * FROM unnest(%b::text[]::uuid[], %b::varchar[], %b::bigint[], %b::timestamptz[], "
            "%b::timestamptz[], %b::varchar[], %b::timestamptz[]) "
            "ON CONFLICT (subscription_id, idempotency_key) DO NOTHING "
            "RETURNING subscription_id, metric, period_start, quantity), "
            "added AS (SELECT subscription_id AS s, metric AS m, period_start AS p, sum(quantity)::int8 AS u, "
            "count(*) AS n FROM ins GROUP BY 1, 2, 3), "
            f"up AS (INSERT INTO {UsageCounter._meta.db_table} AS c (subscription_id, metric, period_start, used) "
            "SELECT s, m, p, u FROM added ORDER BY s, m, p "
            "ON CONFLICT (subscription_id, metric, period_start) DO UPDATE SET used = c.used + EXCLUDED.used "
            "RETURNING id, subscription_id, metric, period_start, used) "
            "SELECT up.subscription_id::text, up.metric, (extract(epoch FROM up.period_start) * 1000000)::int8, "
            "added.u, added.n, up.id, up.used "
            "FROM up JOIN added ON added.s = up.subscription_id AND added.m = up.metric AND added.p = up.period_start",
            [list(c) for c in zip(*rows, strict=True)],  # arrays: 7 parameters whatever the batch
        )
        counted = cursor.fetchall()
    starts = {}  # period starts come back as epoch microseconds: a few distinct values, converted once
    for row in counted:
        if row[2] not in starts:
            starts[row[2]] = _time(row[2])
    sums = {(s, m, starts[p]): u for s, m, p, u, _, _, _ in counted}
    after = {(s, m, starts[p]): (pk, used) for s, m, p, _, _, pk, used in counted}
    return sum(n for *_, n, _, _ in counted), sums, after


def _record_row_by_row(rows) -> tuple[int, dict[tuple, int], dict[tuple, tuple[int, int]]]:
    """SQLite (the embedded default): the same outcome, row by row."""
    sums: dict[tuple, int] = defaultdict(int)
    accepted = 0
    for sub_id, metric, quantity, at, start, key, now in rows:
        _, created = UsageRecord.objects.get_or_create(
            subscription_id=sub_id,
            idempotency_key=key,
            defaults={
                "metric": metric,
                "quantity": quantity,
                "timestamp": at,
                "period_start": start,
                "recorded_at": now,
            },
        )
        if created:
            accepted += 1
            sums[(sub_id, metric, start)] += quantity
    return accepted, dict(sums), _add_to_counters(sums)


def _publish(sums: dict[tuple, int], after: dict[tuple, tuple[int, int]], subs, result, now_of) -> None:
    """UsageRecorded for the batch, and a threshold event for each counter that crossed one."""
    if not sums:
        return
    recorded = []
    now = max(now_of.values())
    batch_id = str(uuid.uuid4())
    totals = [
        ev.UsageTotal(subscription_id=s, customer_id=subs[s].customer_id, metric=m, quantity=q, period_start=p)
        for (s, m, p), q in sorted(sums.items())
    ]
    recorded.append(
        RecordedEvent(
            ev.UsageRecorded(batch_id=batch_id, accepted=result.accepted, duplicates=result.duplicates, totals=totals),
            now,
            "UsageBatch",
            batch_id,
            1,
            None,
        )
    )
    for (sub_id, metric, start), (counter_id, used) in after.items():
        sub = subs[sub_id]
        included = int(sub.included.get(metric) or 0)
        before = used - sums[(sub_id, metric, start)]
        if included <= 0:
            continue
        for percent in THRESHOLDS:
            line = included * percent / 100
            if before < line <= used:
                common = dict(
                    counter_id=str(counter_id),
                    subscription_id=sub_id,
                    customer_id=sub.customer_id,
                    metric=metric,
                    threshold_percent=percent,
                    used=used,
                    included=included,
                    period_start=start,
                )
                at = now_of[sub.test_clock_id]
                recorded.append(
                    RecordedEvent(
                        ev.UsageThresholdReached(**common), at, "UsageCounter", str(counter_id), 1, sub.test_clock_id
                    )
                )
        if before <= included < used:
            recorded.append(
                RecordedEvent(
                    ev.UsageQuotaExceeded(
                        counter_id=str(counter_id),
                        subscription_id=sub_id,
                        customer_id=sub.customer_id,
                        metric=metric,
                        threshold_percent=100,
                        used=used,
                        included=included,
                        period_start=start,
                    ),
                    now_of[sub.test_clock_id],
                    "UsageCounter",
                    str(counter_id),
                    1,
                    sub.test_clock_id,
                )
            )
    append_batch([(current_cause(), recorded)])


def _add_to_counters(sums: dict[tuple, int]) -> dict[tuple, tuple[int, int]]:
    """Add the batch's sums to the counters, row by row (SQLite); returns (counter id, total after) per key."""
    result = {}
    for (sub_id, metric, start), quantity in sums.items():
        counter, _ = UsageCounter.objects.select_for_update().get_or_create(
            subscription_id=sub_id, metric=metric, period_start=start
        )
        counter.used += quantity
        counter.save(update_fields=["used"])
        result[(sub_id, metric, start)] = (counter.pk, counter.used)
    return result


# -- reading ---------------------------------------------------------------------------


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


# -- closing periods -------------------------------------------------------------------


def open_usage_periods(subs: list[Subscription], closing: dict) -> None:
    """After renewals or ends at period end: metered periods wait for late usage, then close.

    Metered: the plan's current terms have overage rates (Billing then holds the renewal invoice for
    the usage) or the subscription's own version has (a grandfathered one keeps its overage; billed
    on an invoice of its own when the renewal was not held)."""
    metered_plans = set(
        PlanOverageRate.objects.filter(plan_id__in={s.plan_id for s in subs}).values_list("plan_id", flat=True)
    )
    terms = usage_terms({(str(s.plan_id), s.plan_version) for s in subs})
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


def calculate_due_periods(due, now: datetime) -> int:
    """UsageCalculated for periods whose grace window has passed (locked batch)."""
    with transaction.atomic():
        periods = list(due.select_for_update(of=("self",), skip_locked=True).select_related("subscription__plan")[:500])
        if not periods:
            return 0
        counters = defaultdict(dict)
        for sub_id, start, metric, used in UsageCounter.objects.filter(
            subscription_id__in={p.subscription_id for p in periods}
        ).values_list("subscription_id", "period_start", "metric", "used"):
            counters[(sub_id, start)][metric] = used
        # the terms of the version each subscription is billed on (grandfathered ones keep theirs)
        terms = usage_terms({(str(p.subscription.plan_id), p.subscription.plan_version) for p in periods})
        groups = []
        for period in periods:
            sub = period.subscription
            version = terms[(str(sub.plan_id), sub.plan_version)]
            included = version.included
            used = counters[(sub.pk, period.period_start)]
            metrics = [
                ev.MetricUsage(
                    metric=m,
                    used=int(used.get(m, 0)),
                    included=int(included.get(m, 0)),
                    overage=max(0, int(used.get(m, 0)) - int(included.get(m, 0))),
                    rate=version.rate(sub.currency, m),
                )
                for m in sorted(set(included) | set(used))
            ]
            event = ev.UsageCalculated(
                usage_period_id=str(period.pk),
                subscription_id=str(sub.pk),
                customer_id=str(sub.customer_id),
                plan_name=sub.plan.name,
                currency=sub.currency,
                period=ev.PeriodRef(period.period_start, period.period_end),
                metrics=metrics,
                final=period.final,
            )
            clock = str(period.test_clock_id) if period.test_clock_id else None
            period.calculated_at = now
            groups.append(
                (
                    Cause(new_correlation_id(), None, clock),
                    [RecordedEvent(event, max(now, period.due_at), "UsagePeriod", str(period.pk), 1, clock)],
                )
            )
        UsagePeriod.objects.filter(pk__in=[p.pk for p in periods]).update(calculated_at=now)
        append_batch(groups)
        return len(periods)

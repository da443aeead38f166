"""The usage tables' persistence, where ingestion speed is made: the fast SQL on PostgreSQL and its
SQLite twin (the embedded default) next to it, same outcome.

A batch costs a handful of statements whatever its size: one read of the subscriptions involved
(:func:`metered_subscriptions`, plus one of their versions' terms, :func:`usage_terms`), and one
statement that inserts the records with ``ON CONFLICT DO NOTHING`` (a repeated idempotency key is a
duplicate, never counted twice) and hands what it inserted to the upsert of the per-period counters
(:func:`count`). Counters are upserted in key order, so concurrent batches never deadlock.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from django.db import connection

from sharedkernel.bulk import bound_cursor
from sharedkernel.values import UnitRate
from subscriptions.models import Plan, PlanOverageRate, PlanVersion, Subscription, UsageCounter, UsageRecord
from subscriptions.models.usage import MeteredSubscription, UsageTerms


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


def metered_subscriptions(ids: set[str]) -> dict[str, MeteredSubscription]:
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
        opened[as_text(pk)] = MeteredSubscription(
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


def count(rows) -> tuple[int, dict[tuple, int], dict[tuple, tuple[int, int]]]:
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

"""Price migration scheduling benchmark: N subscriptions given their price change by the beat job.

    python bench/price_migration.py 10000

On a fresh PostgreSQL database (DATABASE_URL's server, database ``bench_price_migration`` or
BENCH_DB_NAME): set-up (not timed) writes a monthly plan in USD and EUR, N customers and N active
subscriptions on its version 1 in bulk, then a version 2 (+10 %) and a started migration of all of
them. Timed: ``subscriptions.schedule_price_changes`` as beat runs it — PRICE_MIGRATION_BATCH
(default 500) subscriptions per transaction, each with its PriceChangeScheduled event and its
PriceMigrationItem row. Delivery of the events (notices, webhooks) is not part of the figure
(EVENT_DISPATCH=manual). Prints subscriptions/s, SQL statements per subscription, and checks that a
second run schedules nothing.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common, _fresh  # noqa: E402

BASE_DB, DB_NAME, DB_URL = _fresh.database("bench_price_migration")  # BENCH_DB_NAME when several people bench at once
_common.manual_dispatch_environment(DB_URL)


def recreate_database() -> None:
    _fresh.recreate(BASE_DB, DB_NAME)


def main(n: int) -> None:
    recreate_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from sharedkernel.models import StoredEvent
    from sharedkernel.scheduling import run_job
    from sharedkernel.values import Money
    from subscriptions import commands
    from subscriptions.models import Customer, Subscription
    from subscriptions.queries import outcome_counts

    plan = commands.define_plan(
        code="pro-m",
        name="Pro",
        tier="professional",
        interval="month",
        trial_days=0,
        prices=[Money("49.00", "USD"), Money("45.00", "EUR")],
    )
    now = timezone.now()
    begin = now - timedelta(days=10)
    customers, subs = [], []
    for i in range(n):
        currency = "USD" if i % 2 else "EUR"
        c = _common.customer_row(i, currency=currency, country="DE", created_at=begin)
        customers.append(c)
        subs.append(
            _common.active_subscription_row(
                c,
                plan,
                price_minor=4900 if currency == "USD" else 4500,
                start=begin,
                end=begin + timedelta(days=30),
                period_index=0,
                activated_at=begin,
            )
        )
    with transaction.atomic():
        Customer.objects.bulk_create(customers, batch_size=2000)
        Subscription.objects.bulk_create(subs, batch_size=2000)
    commands.revise_plan(
        plan_id=str(plan.pk),
        name="Pro",
        trial_days=0,
        prices=[Money("53.90", "USD"), Money("49.50", "EUR")],
        features=[],
        included_usage={},
        overage_rates={},
    )
    migration = commands.draft_price_migration(plan_id=str(plan.pk), to_version=2, effective_from=now)
    commands.start_price_migration(migration_id=migration.pk)

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        handled = run_job("subscriptions.schedule_price_changes")
        elapsed = time.perf_counter() - started
    again = run_job("subscriptions.schedule_price_changes")
    scheduled = StoredEvent.objects.filter(event_type="subscriptions.PriceChangeScheduled").count()
    print(f"N={n}: {handled} subscriptions handled in {elapsed:.2f} s = {handled / elapsed:,.0f} subscriptions/s")
    print(f"  SQL statements: {len(queries)} ({len(queries) / max(handled, 1):.2f} per subscription)")
    print(f"  PriceChangeScheduled stored: {scheduled}; a second run handled {again}")
    print(f"  counts: {outcome_counts(migration)}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["10000"]:
        main(int(arg))

"""Bill run benchmark: N due subscriptions renewed and billed by real worker processes.

    python bench/bill_run.py 1000 10000 [100000]

For each N, on a fresh PostgreSQL database (DATABASE_URL's server, database
``bench_bill_run`` or BENCH_DB_NAME) and a flushed Redis database (BENCH_REDIS_URL,
default redis://127.0.0.1:6379/15):

Redis: the bench and its workers use BENCH_REDIS_URL, and only it, as both broker and
cache (the settings read it as REDIS_URL in the bench's child processes). A REDIS_URL
in your environment (your test Redis) is left alone: it is never flushed nor used.

1. set-up (not timed): plans in USD, EUR, JPY and KWD (monthly and annual), N
   customers with billing accounts (5 % with a declining card) and N active
   subscriptions whose period ended a minute ago — written in bulk, as the
   contexts' own commands would have left them: Billing's copy of each
   subscription, and Analytics' SubscriptionView (MRR counted) and CustomerName, so
   the timed run's projections update existing rows as a real renewal does;
2. timed: the renewal job runs (as beat would) while WORKERS worker processes
   drain every chain — SubscriptionRenewed → InvoiceGenerated → TaxCalculated →
   InvoiceFinalized → PaymentAttempted → PaymentSucceeded/Failed → InvoicePaid and
   the reactions of Subscriptions (activation), Notifications (invoice e-mail, receipt,
   webhook fan-out) and Analytics (MRR, revenue) — until no delivery is open and no
   charge or tax quote is in flight;
3. prints subscriptions/s, events/s, SQL queries per subscription (counted in
   every worker process and the bench itself) and the time to drain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common, _fresh  # noqa: E402

BASE_DB, DB_NAME, DB_URL = _fresh.database("bench_bill_run")  # BENCH_DB_NAME when several people bench at once
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
WORKERS = int(os.environ.get("WORKERS", "2"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "2"))
QUEUE = f"bench-{uuid.uuid4().hex[:6]}"

#: The environment of the bench's Django processes (the measuring one and the workers). Applied
#: only in the ``--one`` child, so the caller's REDIS_URL is never taken for the bench's.
BENCH_ENV = dict(
    DATABASE_URL=DB_URL,
    REDIS_URL=BENCH_REDIS_URL,
    DEBUG="0",  # as in production: no per-query logging in the workers
    SECRET_KEY=os.environ.get("SECRET_KEY") or uuid.uuid4().hex,
    EVENT_DISPATCH="celery",
    CELERY_QUEUE=QUEUE,
    DJANGO_SETTINGS_MODULE="config.settings",
)


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(BENCH_REDIS_URL).flushdb()


def recreate_database() -> None:
    _fresh.recreate(BASE_DB, DB_NAME)


def setup_django():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


PLANS = [
    ("basic-m", "Basic", "basic", "month", {"USD": "19.00", "EUR": "17.00", "JPY": "2500", "KWD": "6.000"}),
    ("pro-m", "Pro", "professional", "month", {"USD": "49.00", "EUR": "45.00", "JPY": "6500", "KWD": "15.250"}),
    (
        "pro-y",
        "Pro annual",
        "professional",
        "year",
        {"USD": "490.00", "EUR": "450.00", "JPY": "65000", "KWD": "152.500"},
    ),
    ("team-m", "Team", "enterprise", "month", {"USD": "99.99", "EUR": "89.99", "JPY": "12800", "KWD": "30.125"}),
]
WHERE = {"USD": ("US", "CA"), "EUR": ("DE", ""), "JPY": ("JP", ""), "KWD": ("KW", "")}


def populate(n: int) -> None:
    from dateutil.relativedelta import relativedelta
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from analytics.models import CustomerName, SubscriptionView
    from analytics.policies import contribution
    from billing.acl.subscriptions import account_holder
    from billing.models import BilledSubscription, BillingAccount, TaxRate
    from billing.values import PaymentMethodInfo
    from sharedkernel.bus import drain
    from sharedkernel.values import Money
    from subscriptions import commands
    from subscriptions.models import Customer, Subscription

    settings.EVENT_DISPATCH = "manual"
    plans = []
    for code, name, tier, interval, prices in PLANS:
        plans.append(
            commands.define_plan(
                code=code,
                name=name,
                tier=tier,
                interval=interval,
                trial_days=0,
                prices=[Money(a, c) for c, a in prices.items()],
            )
        )
    drain()
    TaxRate.objects.create(country="US", region="CA", rate=Decimal("0.0725"), name="California sales tax")
    TaxRate.objects.create(country="DE", region="", rate=Decimal("0.19"), name="Umsatzsteuer")
    TaxRate.objects.create(country="JP", region="", rate=Decimal("0.10"), name="Consumption tax")

    card = PaymentMethodInfo("pm_card_visa", "visa", "4242")
    declining_card = PaymentMethodInfo("pm_card_chargeDeclined", "visa", "0002")
    now = timezone.now()
    currencies = list(WHERE)
    for start in range(0, n, 5000):
        customers, accounts, subs, billed, views, names = [], [], [], [], [], []
        for i in range(start, min(n, start + 5000)):
            currency = currencies[i % 4]
            plan = plans[i % len(plans)]
            country, region = WHERE[currency]
            months = 12 if plan.interval == "year" else 1
            end = now - timedelta(minutes=1)
            begin = end - relativedelta(months=months)
            price = plan.price_in(currency)
            declining = i % 20 == 7  # 5 %
            c = _common.customer_row(
                i, currency=currency, country=country, region=region, has_payment_method=True, created_at=begin
            )
            customers.append(c)
            # Billing's account, opened from the customer's CustomerRegistered as Billing's policy opens it
            (registered,) = c.recorded_events
            account = BillingAccount.open(at=begin, **account_holder(registered.payload()))
            account.set_payment_method(declining_card if declining else card, at=begin)
            account.version = 1  # as save_aggregate leaves a new row
            accounts.append(account)
            s = _common.active_subscription_row(
                c, plan, price_minor=price.minor_units, start=begin, end=end, period_index=0, activated_at=begin
            )
            subs.append(s)
            billed.append(
                BilledSubscription(
                    subscription_id=s.id,
                    customer_id=c.id,
                    plan_id=plan.id,
                    plan_name=plan.name,
                    plan_code=plan.code,
                    interval=plan.interval,
                    currency=currency,
                    price_minor=price.minor_units,
                    status="active",
                    period_start=begin,
                    period_end=end,
                    source_version=1,
                )
            )
            view = SubscriptionView(
                subscription_id=s.id,
                customer_id=c.id,
                plan_id=plan.id,
                plan_name=plan.name,
                tier=plan.tier,
                interval=plan.interval,
                currency=currency,
                price_minor=price.minor_units,
                status="active",
                started_at=begin,
                activated_at=begin,
                last_version=1,
            )
            view.mrr_minor = contribution(view)
            view.ever_contributed = view.mrr_minor > 0
            views.append(view)
            names.append(CustomerName(customer_id=c.id, name=c.name, email=c.email))
        with transaction.atomic():
            Customer.objects.bulk_create(customers)
            BillingAccount.objects.bulk_create(accounts)
            Subscription.objects.bulk_create(subs)
            BilledSubscription.objects.bulk_create(billed)
            SubscriptionView.objects.bulk_create(views)
            CustomerName.objects.bulk_create(names)
    settings.EVENT_DISPATCH = "celery"


def start_workers(count_dir: str) -> list[subprocess.Popen]:
    from config.celery import worker_command

    workers = []
    for k in range(WORKERS):
        ready = Path(count_dir) / f"ready-{k}"
        env = dict(os.environ, WORKER_READY_FILE=str(ready), QUERY_COUNT_DIR=count_dir)
        log = open(Path(count_dir) / f"worker-{k}.log", "wb")  # noqa: SIM115
        workers.append(
            subprocess.Popen(
                worker_command(QUEUE, concurrency=CONCURRENCY, name=f"bench{k}@%h"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 60
    while not all((Path(count_dir) / f"ready-{k}").exists() for k in range(WORKERS)):
        if time.monotonic() > deadline:
            raise SystemExit("workers did not start; see " + count_dir)
        time.sleep(0.1)
    return workers


def run(n: int) -> dict:
    from django.db import connection, connections
    from django.utils import timezone

    from analytics.models import SubscriptionView
    from billing.models import Invoice, Payment
    from config.celery import _count
    from sharedkernel.bus import relay
    from sharedkernel.models import OPEN_STATUSES, EventDelivery, StoredEvent
    from sharedkernel.scheduling import run_job, still_running
    from subscriptions.models import Subscription

    t_setup = time.monotonic()
    populate(n)
    with connection.cursor() as cursor:
        # what autovacuum would have done on a live server after the set-up's bulk import (this
        # machine's PostgreSQL runs with it off): planner statistics for the tables just filled
        cursor.execute("ANALYZE")
    setup_seconds = time.monotonic() - t_setup
    connections.close_all()
    count_dir = tempfile.mkdtemp(prefix="bill-run-")
    workers = start_workers(count_dir)
    profilers = [
        # PYSPY=/tmp/bill: each worker (and its pool) sampled by py-spy, collapsed stacks in /tmp/bill.<k>
        subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "--subprocesses", "--format", "raw"]
            + ["-o", f"{os.environ['PYSPY']}.{k}", "--pid", str(w.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for k, w in enumerate(workers)
        if os.environ.get("PYSPY")
    ]
    try:
        events_before = StoredEvent.objects.count()
        own = [0]

        def count_own(execute, sql, params, many, context):
            own[0] += 1
            return execute(sql, params, many, context)

        t0 = time.monotonic()
        with connection.execute_wrapper(count_own):
            renewed = run_job("subscriptions.renew_subscriptions", now=timezone.now())
            # charges and tax quotes run after their handler committed: drained means those are done too,
            # read in one snapshot with the deliveries (still_running) once none looks open
            while EventDelivery.objects.filter(status__in=OPEN_STATUSES).exists() or still_running():
                time.sleep(0.2)
                if time.monotonic() - t0 > 1800:
                    raise SystemExit("not drained after 30 min")
                if EventDelivery.objects.filter(status="retrying", dispatch_after__lte=timezone.now()).exists():
                    relay()
        drained = time.monotonic() - t0
        own_queries = own[0]
    finally:
        for p in profilers:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=60)
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
    worker_queries = sum(int(p.read_text() or 0) for p in Path(count_dir).glob("*.count"))
    events = StoredEvent.objects.count() - events_before
    failed = EventDelivery.objects.filter(status="failed").count()
    return {
        "n": n,
        "renewed": renewed,
        "invoices": Invoice.objects.filter(billing_reason="subscription_cycle").count(),
        "paid": Invoice.objects.filter(billing_reason="subscription_cycle", status="paid").count(),
        "declined": Payment.objects.filter(status="failed").count(),
        "active": Subscription.objects.filter(status="active").count(),
        # the renewal reached Analytics' existing rows (not a projection with nothing to update)
        "projected": SubscriptionView.objects.filter(last_position__gt=0, usage_last_period=0).count(),
        "events": events,
        "failed_deliveries": failed,
        "seconds": drained,
        "setup_seconds": setup_seconds,
        "queries": worker_queries + own_queries,
        "_count": _count,
    }


def main(sizes: list[int]) -> None:
    print(
        f"bill run: {WORKERS} worker processes × concurrency {CONCURRENCY}, PostgreSQL {DB_URL}, "
        f"Redis {BENCH_REDIS_URL} (broker and cache)"
    )
    print(
        f"{'N':>8} {'drain s':>8} {'subs/s':>8} {'events':>8} {'events/s':>9} {'queries/sub':>11} "
        f"{'paid':>7} {'declined':>8} {'failed dlv':>10}"
    )
    for n in sizes:
        recreate_database()
        flush_redis()
        code = subprocess.run([sys.executable, __file__, "--one", str(n)], cwd=ROOT, env=dict(os.environ, **BENCH_ENV))
        if code.returncode:
            raise SystemExit(code.returncode)


def one(n: int) -> None:
    setup_django()
    r = run(n)
    assert r["renewed"] == n and r["invoices"] == n and r["projected"] == n, r
    print(
        f"{r['n']:>8} {r['seconds']:>8.1f} {r['n'] / r['seconds']:>8.0f} {r['events']:>8} "
        f"{r['events'] / r['seconds']:>9.0f} {r['queries'] / r['n']:>11.2f} {r['paid']:>7} {r['declined']:>8} "
        f"{r['failed_deliveries']:>10}   (set-up {r['setup_seconds']:.0f} s, not timed)",
        flush=True,
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        os.environ.update(BENCH_ENV)
        one(int(sys.argv[2]))
    else:
        main([int(a) for a in sys.argv[1:]] or [1000, 10000])

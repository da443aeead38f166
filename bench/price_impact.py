"""Price impact benchmark: six months of N subscriptions' events replayed under a migration's new terms.

    python bench/price_impact.py 10000        (target: under 60 s on 2 cores for 10,000)

On a fresh PostgreSQL database (DATABASE_URL's server, database ``bench_price_impact`` or
BENCH_DB_NAME). Set-up (not timed) writes the event store directly, in bulk and in time order, as
the contexts would have stored it: a plan (USD and EUR) with version 1 and a dearer version 2 with
less included usage, a migration of every version-1 subscription to version 2, and N subscriptions
created over the first month, each renewed monthly with its usage calculated and its invoice
finalized (plan + usage overage + tax lines), plus the events the replay does not read
(InvoiceGenerated, TaxCalculated, PaymentSucceeded) so it has to skip them as in production;
2 % cancel and 1 % upgrade to another plan each month.

Timed: ``analytics.impact.impact_of`` over the last six months — the replay the staff page and
``GET /price-migrations/{id}/impact/`` run — then the API call and the staff page themselves
(replay + JSON or HTML with its charts). Prints the seconds, events read per second and the
figures as a sanity check.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _common, _fresh  # noqa: E402

BASE_DB, DB_NAME, DB_URL = _fresh.database("bench_price_impact")  # BENCH_DB_NAME when several people bench at once
_common.manual_dispatch_environment(DB_URL)

PRICES = {1: {"USD": "49.00", "EUR": "45.00"}, 2: {"USD": "55.00", "EUR": "50.00"}}
INCLUDED = {1: 1000, 2: 500}
RATES = {1: {"USD": "0.010", "EUR": "0.009"}, 2: {"USD": "0.012", "EUR": "0.011"}}


def recreate_database() -> None:
    _fresh.recreate(BASE_DB, DB_NAME)


def money(amount, currency: str) -> dict:
    return {"amount": str(amount), "currency": currency}


def add_months(when: datetime, n: int) -> datetime:
    month = when.month - 1 + n
    return when.replace(year=when.year + month // 12, month=month % 12 + 1, day=min(when.day, 28))


class History:
    """The events of the scripted business, collected as (occurred_on, type, aggregate type, id, payload)."""

    def __init__(self, n: int, start: datetime, now: datetime) -> None:
        self.rows: list[tuple] = []
        self.plan, self.other = str(uuid.uuid4()), str(uuid.uuid4())
        self.migration = str(uuid.uuid4())
        self.rng = random.Random(16)
        self.plan_events(start)
        for i in range(n):
            self.subscription(i, start + timedelta(days=i % 28, hours=i % 24), now)

    def add(self, when, event_type, aggregate_type, aggregate_id, payload) -> None:
        self.rows.append((when, event_type, aggregate_type, aggregate_id, payload))

    def plan_ref(self, version: int, plan: str | None = None) -> dict:
        code = "pro" if (plan or self.plan) == self.plan else "business"
        return {"id": plan or self.plan, "code": code, "name": code.title(), "tier": "professional",
                "interval": "month", "version": version}  # fmt: skip

    def plan_events(self, start: datetime) -> None:
        for version, event_type in ((1, "subscriptions.PlanCreated"), (2, "subscriptions.PlanUpdated")):
            self.add(start - timedelta(days=2 - version), event_type, "Plan", self.plan, {
                "plan_id": self.plan, "code": "pro", "name": "Pro", "tier": "professional", "interval": "month",
                "trial_days": 0, "features": [], "version": version,
                "prices": [money(a, c) for c, a in PRICES[version].items()],
                "included_usage": {"api_calls": INCLUDED[version]},
                "overage_rates": {"api_calls": [money(a, c) for c, a in RATES[version].items()]},
                "current_from": start.isoformat(),
            })  # fmt: skip
        self.add(start - timedelta(hours=1), "subscriptions.PriceMigrationDrafted", "PriceMigration", self.migration, {
            "migration_id": self.migration, "plan_id": self.plan, "to_version": 2,
            "effective_from": start.isoformat(), "from_versions": [], "currencies": [], "subscription_ids": [],
            "created_before": None,
        })  # fmt: skip

    def subscription(self, i: int, created: datetime, now: datetime) -> None:
        sub, customer = str(uuid.uuid4()), str(uuid.uuid4())
        currency = "USD" if i % 2 else "EUR"
        price, plan, version = PRICES[1][currency], self.plan, 1
        tax_rate = (0, 19, 20)[i % 3]

        def sub_event(name, when, status="active", **extra):
            period = {"start": when.isoformat(), "end": add_months(when, 1).isoformat()}
            self.add(when, f"subscriptions.{name}", "Subscription", sub, {
                "subscription_id": sub, "customer_id": customer, "status": status, "price": money(price, currency),
                "plan": self.plan_ref(version, plan), "period": period, **extra,
            })  # fmt: skip

        def invoice(when, lines):
            invoice_id = str(uuid.uuid4())
            subtotal = sum(float(a) for _, a, _ in lines)
            tax = f"{subtotal * tax_rate / 100:.2f}"
            all_lines = [{"description": k, "kind": k, "amount": money(a, currency), "metric": m} for k, a, m in lines]
            all_lines.append({"description": "VAT", "kind": "tax", "amount": money(tax, currency), "metric": None})
            self.add(when, "billing.InvoiceGenerated", "Invoice", invoice_id, {
                "invoice_id": invoice_id, "subscription_id": sub, "customer_id": customer, "currency": currency,
                "lines": all_lines[:-1], "subtotal": money(f"{subtotal:.2f}", currency),
            })  # fmt: skip
            self.add(when, "billing.TaxCalculated", "Invoice", invoice_id, {
                "invoice_id": invoice_id, "customer_id": customer, "tax": money(tax, currency), "rate": str(tax_rate),
            })  # fmt: skip
            total = f"{subtotal + float(tax):.2f}"
            self.add(when, "billing.InvoiceFinalized", "Invoice", invoice_id, {
                "invoice_id": invoice_id, "number": f"INV-{invoice_id[:8]}", "customer_id": customer,
                "customer_name": f"Customer {i}", "customer_email": f"c{i}@bench.example", "subscription_id": sub,
                "plan_name": "Pro", "billing_reason": "subscription_cycle", "currency": currency, "lines": all_lines,
                "subtotal": money(f"{subtotal:.2f}", currency), "tax": money(tax, currency),
                "total": money(total, currency), "credit_applied": money("0.00", currency),
                "amount_due": money(total, currency), "issued_at": when.isoformat(),
                "url": f"/billing/invoices/{invoice_id}/",
            })  # fmt: skip
            self.add(when, "billing.PaymentSucceeded", "Payment", str(uuid.uuid4()), {
                "invoice_id": invoice_id, "customer_id": customer, "subscription_id": sub,
                "amount": money(total, currency),
            })  # fmt: skip

        sub_event("SubscriptionCreated", created, trial=False)
        invoice(created, [("plan", price, None)])
        when = created
        while True:
            renewal = add_months(when, 1)
            if renewal > now:
                return
            used = self.rng.randint(200, 1600)
            self.add(renewal - timedelta(seconds=1), "subscriptions.UsageCalculated", "UsagePeriod", str(uuid.uuid4()), {
                "usage_period_id": str(uuid.uuid4()), "subscription_id": sub, "customer_id": customer,
                "plan_name": "Pro", "currency": currency, "final": True,
                "period": {"start": when.isoformat(), "end": renewal.isoformat()},
                "metrics": [{"metric": "api_calls", "used": used, "included": INCLUDED[1]}],
            })  # fmt: skip
            sub_event("SubscriptionRenewed", renewal)
            over = max(0, used - INCLUDED[1]) if plan == self.plan else 0
            lines = [("plan", price, None)]
            if over:
                lines.append(("usage", f"{over * float(RATES[1][currency]):.2f}", "api_calls"))
            invoice(renewal, lines)
            when = renewal
            roll = self.rng.random()
            if roll < 0.02:
                sub_event("SubscriptionCancelled", when + timedelta(days=3), status="cancelled", reason="too_expensive")
                return
            if roll < 0.03 and plan == self.plan:
                old = money(price, currency)
                plan, version, price = self.other, 1, "99.00"
                sub_event("PlanChanged", when + timedelta(days=5), direction="upgrade", old_price=old,
                          new_price=money(price, currency))  # fmt: skip


def main(n: int) -> None:
    recreate_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connection

    from analytics import impact
    from sharedkernel.models import StoredEvent
    from tests.helpers import api_client, staff_user

    now = datetime.now(UTC)
    start = add_months(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), -5)
    began = time.perf_counter()
    history = History(n, start, now)
    history.rows.sort(key=lambda r: r[0])
    StoredEvent.objects.bulk_create(
        (
            StoredEvent(
                event_type=t,
                occurred_on=when,
                recorded_at=when,
                aggregate_type=at,
                aggregate_id=aid,
                payload=payload,
                correlation_id=aid,
            )
            for when, t, at, aid, payload in history.rows
        ),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE sharedkernel_storedevent")
    read = sum(1 for r in history.rows if r[1] in impact.EVENT_TYPES)
    print(f"N={n}: set-up wrote {len(history.rows):,} events ({read:,} of the types the replay reads) "
          f"in {time.perf_counter() - began:.1f} s")  # fmt: skip

    started = time.perf_counter()
    result = impact.impact_of(history.migration, now=now, months=6)
    elapsed = time.perf_counter() - started
    print(f"  replay of 6 months: {elapsed:.2f} s ({read / elapsed:,.0f} events/s); target < 60 s")
    for r in result.months:
        print(
            f"    {r['month']} {r['currency']}: revenue {r['actual_revenue']} → {r['proposed_revenue']}, "
            f"MRR {r['actual_mrr']} → {r['proposed_mrr']}"
        )
    print(f"  assumptions: churn {result.assumptions['monthly_churn_rate']}/month, "
          f"upgrades {result.assumptions['monthly_upgrade_rate']}/month, {result.assumptions['basis']}")  # fmt: skip

    from django.test import Client

    user = staff_user("bench")
    for label, client, url in (
        ("GET /api/v1/price-migrations/{id}/impact/?months=6", api_client(user), "/api/v1/price-migrations/"),
        ("GET /staff/analytics/price-migrations/{id}/impact/?months=6", Client(), "/staff/analytics/price-migrations/"),
    ):
        client.force_login(user)
        started = time.perf_counter()
        response = client.get(f"{url}{history.migration}/impact/?months=6")
        assert response.status_code == 200, response.content[:300]
        print(f"  {label}: {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["10000"]:
        main(int(arg))

"""The impact replay, per month and per currency, against figures worked out by hand.

History (2026), plan Team monthly, migration M: every version-1 subscription to version 2.
  v1: 20.00 USD / 18.00 EUR; 100 api calls included; over: 0.05 USD / 0.04 EUR per call.
  v2: 25.00 USD / 22.00 EUR;  50 api calls included; over: 0.10 USD / 0.08 EUR per call.
  U1 (USD, taxed 20 %) from Jan 1: 150 calls in Jan (2.50 billed Feb 1), 30 in Feb (nothing billed).
  U2 (USD, untaxed) from Jan 1: upgrades to plan Business (50.00) on Feb 10, a 25.00 proration invoice.
  E1 (EUR) from Jan 15: 120 calls before its Feb 15 invoice (0.80 billed); cancels on Mar 5.
  X  (USD) started on v2 on Feb 1, and O (USD) on another plan: not selected, in no figure.
Now is Mar 20; three months are replayed (Jan, Feb, Mar).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest

from analytics import impact
from tests.analytics.helpers import price_migration_drafted
from tests.helpers import publish

TEAM, BUSINESS, OTHER = (str(uuid.uuid4()) for _ in range(3))
MIGRATION = str(uuid.uuid4())


def money(text: str) -> dict:
    amount, currency = text.split()
    return {"amount": amount, "currency": currency}


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def plan_ref(plan: str, version: int = 1) -> dict:
    return {
        "id": plan,
        "code": plan[:8],
        "name": "Team",
        "tier": "professional",
        "interval": "month",
        "version": version,
    }


def version(
    event_type: str, v: int, usd: str, eur: str, included: int, rate_usd: str, rate_eur: str, when: datetime
) -> None:
    payload = {
        "plan_id": TEAM,
        "code": "team",
        "name": "Team",
        "tier": "professional",
        "interval": "month",
        "trial_days": 0,
        "prices": [money(f"{usd} USD"), money(f"{eur} EUR")],
        "features": [],
        "included_usage": {"api": included},
        "overage_rates": {"api": [money(f"{rate_usd} USD"), money(f"{rate_eur} EUR")]},
        "version": v,
        "current_from": at(1, 1).isoformat(),
    }
    publish(event_type, payload, aggregate_type="Plan", aggregate_id=TEAM, occurred_on=when)


class Sub:
    def __init__(self, price: str, plan: str = TEAM, v: int = 1) -> None:
        self.id, self.customer, self.price, self.plan, self.version = (
            str(uuid.uuid4()),
            str(uuid.uuid4()),
            price,
            plan,
            v,
        )

    def event(self, name: str, when: datetime, status: str = "active", **extra) -> None:
        payload = {
            "subscription_id": self.id,
            "customer_id": self.customer,
            "status": status,
            "price": money(self.price),
            "plan": plan_ref(self.plan, self.version),
            **extra,
        }
        publish(f"subscriptions.{name}", payload, aggregate_type="Subscription", aggregate_id=self.id, occurred_on=when)

    def invoice(self, when: datetime, *lines: tuple[str, str, str | None]) -> None:
        currency = self.price.split()[1]
        payload = {
            "invoice_id": str(uuid.uuid4()),
            "subscription_id": self.id,
            "customer_id": self.customer,
            "currency": currency,
            "billing_reason": "subscription_cycle",
            "issued_at": when.isoformat(),
            "lines": [
                {"description": kind, "kind": kind, "amount": money(f"{a} {currency}"), "metric": m}
                for kind, a, m in lines
            ],
        }
        publish("billing.InvoiceFinalized", payload, aggregate_type="Invoice", occurred_on=when)

    def usage(self, when: datetime, used: int) -> None:
        payload = {
            "subscription_id": self.id,
            "customer_id": self.customer,
            "currency": self.price.split()[1],
            "metrics": [{"metric": "api", "used": used, "included": 100}],
            "final": False,
        }
        publish("subscriptions.UsageCalculated", payload, aggregate_type="UsagePeriod", occurred_on=when)


def draft_migration(when: datetime) -> None:
    version("subscriptions.PlanUpdated", 2, "25.00", "22.00", 50, "0.10", "0.08", when)
    price_migration_drafted(MIGRATION, TEAM, effective_from=at(4, 1), occurred_on=when)


@pytest.fixture(params=["drafted after the history", "drafted before it"])
def history(request):
    """As in life, version 2 and the migration usually come after the months they are tested on;
    the figures are the same either way."""
    version("subscriptions.PlanCreated", 1, "20.00", "18.00", 100, "0.05", "0.04", at(1, 1))
    if request.param == "drafted before it":
        draft_migration(at(1, 1))
    u1, u2, e1 = Sub("20.00 USD"), Sub("20.00 USD"), Sub("18.00 EUR")
    x, o = Sub("25.00 USD", v=2), Sub("20.00 USD", plan=OTHER)
    for s in (u1, u2, o):
        s.event("SubscriptionCreated", at(1, 1))
    u1.invoice(at(1, 1), ("plan", "20.00", None), ("tax", "4.00", None))
    u2.invoice(at(1, 1), ("plan", "20.00", None))
    o.invoice(at(1, 1), ("plan", "20.00", None))
    e1.event("SubscriptionCreated", at(1, 15))
    e1.invoice(at(1, 15), ("plan", "18.00", None))
    u1.usage(at(1, 31), 150)
    for s in (u1, u2, o):
        s.event("SubscriptionRenewed", at(2, 1))
    u1.invoice(at(2, 1), ("plan", "20.00", None), ("usage", "2.50", "api"), ("tax", "4.50", None))
    u2.invoice(at(2, 1), ("plan", "20.00", None))
    o.invoice(at(2, 1), ("plan", "20.00", None))
    x.event("SubscriptionCreated", at(2, 1))
    x.invoice(at(2, 1), ("plan", "25.00", None))
    u2.plan, u2.price = BUSINESS, "50.00 USD"
    u2.event("PlanChanged", at(2, 10), direction="upgrade", new_price=money("50.00 USD"))
    u2.invoice(at(2, 10), ("proration", "25.00", None))
    e1.usage(at(2, 14), 120)
    e1.event("SubscriptionRenewed", at(2, 15))
    e1.invoice(at(2, 15), ("plan", "18.00", None), ("usage", "0.80", "api"))
    u1.usage(at(2, 28), 30)
    for s in (u1, u2, x, o):
        s.event("SubscriptionRenewed", at(3, 1))
    u1.invoice(at(3, 1), ("plan", "20.00", None), ("tax", "4.00", None))
    u2.invoice(at(3, 1), ("plan", "50.00", None))
    x.invoice(at(3, 1), ("plan", "25.00", None))
    o.invoice(at(3, 1), ("plan", "20.00", None))
    e1.event("SubscriptionCancelled", at(3, 5), status="cancelled")
    if request.param == "drafted after the history":
        draft_migration(at(3, 18))
    return {"U1": u1, "U2": u2, "E1": e1}


def row(r: dict) -> tuple:
    return (
        r["month"],
        r["currency"],
        *(str(r[k].amount) for k in ("actual_revenue", "proposed_revenue", "actual_mrr", "proposed_mrr")),
    )


@pytest.mark.django_db
def test_revenue_and_mrr_per_month_and_currency(history):
    result = impact.impact_of(MIGRATION, now=at(3, 20), months=3)

    # Revenue (subtotals, before tax), actual → proposed:
    #  Jan USD: U1 20 + U2 20 = 40        → 25 + 25 = 50
    #  Feb USD: U1 20 + 2.50, U2 20, U2's proration 25 (after its upgrade: off the migration) = 67.50
    #           → U1 25 + (150 − 50) × 0.10 = 35, U2 25, proration 25 = 85
    #  Mar USD: U1 20, U2 50 on Business (not moved) = 70 → 25 + 50 = 75 (U1's 30 calls are within 50)
    #  Jan EUR: 18 → 22;  Feb EUR: 18 + 0.80 → 22 + (120 − 50) × 0.08 = 27.60;  Mar EUR: nothing
    # MRR at month end (active, selected): Jan USD 40 → 50 (U1, U2), EUR 18 → 22 (E1);
    #  Feb and Mar USD U1 20 → 25 plus U2 50 → 50 = 70 → 75; Feb EUR 18 → 22; Mar EUR 0 (E1 cancelled).
    assert [row(r) for r in result.months] == [
        ("2026-01", "EUR", "18.00", "22.00", "18.00", "22.00"),
        ("2026-01", "USD", "40.00", "50.00", "40.00", "50.00"),
        ("2026-02", "EUR", "18.80", "27.60", "18.00", "22.00"),
        ("2026-02", "USD", "67.50", "85.00", "70.00", "75.00"),
        ("2026-03", "EUR", "0.00", "0.00", "0.00", "0.00"),
        ("2026-03", "USD", "70.00", "75.00", "70.00", "75.00"),
    ]


@pytest.mark.django_db
def test_invoice_totals_carry_each_invoices_own_tax_rate(history):
    result = impact.impact_of(MIGRATION, now=at(3, 20), months=3)

    # U1 pays 20 % tax: Jan 24 → 25 + 5 = 30; Feb 27 → 35 + 4.50 × 35 / 22.50 = 42; Mar 24 → 30.
    #  USD: Jan 24 + 20 = 44 → 30 + 25 = 55; Feb 27 + 20 + 25 = 72 → 42 + 25 + 25 = 92; Mar 24 + 50 → 30 + 50.
    #  EUR is untaxed: the subtotals.
    assert [
        (r["month"], r["currency"], r["count"], str(r["actual_total"].amount), str(r["proposed_total"].amount))
        for r in result.invoices
    ] == [
        ("2026-01", "EUR", 1, "18.00", "22.00"),
        ("2026-01", "USD", 2, "44.00", "55.00"),
        ("2026-02", "EUR", 1, "18.80", "27.60"),
        ("2026-02", "USD", 3, "72.00", "92.00"),
        ("2026-03", "EUR", 0, "0.00", "0.00"),
        ("2026-03", "USD", 2, "74.00", "80.00"),
    ]


@pytest.mark.django_db
def test_customers_and_overage(history):
    result = impact.impact_of(MIGRATION, now=at(3, 20), months=3)

    # ranked by the rise against the bill: U1 62.50 → 85.00 (+22.50, 36.0 %); E1 36.80 → 49.60
    # (+12.80 EUR, 34.78 %); U2 115.00 → 125.00 (+10.00, 8.70 %)
    rows = [(r["customer"], str(r["actual"]), str(r["proposed"]), str(r["change"])) for r in result.customers]
    assert rows == [
        (history["U1"].customer, "62.50 USD", "85.00 USD", "22.50 USD"),
        (history["E1"].customer, "36.80 EUR", "49.60 EUR", "12.80 EUR"),
        (history["U2"].customer, "115.00 USD", "125.00 USD", "10.00 USD"),
    ]
    assert [str(r["rise_percent"]) for r in result.customers] == ["36.0", "34.8", "8.7"]
    # Overage billed against overage under v2's 50 included calls: EUR 70 calls over, USD 100 (+ 0 in Feb)
    assert [(o["metric"], str(o["actual"]), o["proposed_units"], str(o["proposed"])) for o in result.overage] == [
        ("api", "0.80 EUR", 70, "5.60 EUR"),
        ("api", "2.50 USD", 100, "10.00 USD"),
    ]


def half_up(x: Fraction) -> int:
    """An exact fraction of minor units, rounded half-up to a whole one."""
    return int((Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.django_db
def test_the_projection_uses_the_historys_own_churn_and_upgrade_rates(history):
    result = impact.impact_of(MIGRATION, now=at(3, 20), months=3)

    # Active selected at the start of Feb: U1, U2, E1 = 3; of Mar: 3 again → 6 subscription-months.
    # One cancellation (E1, Mar) and one upgrade (U2, Feb): both rates 1/6.
    assert result.assumptions["monthly_churn_rate"] == result.assumptions["monthly_upgrade_rate"] == "0.1667"
    assert result.assumptions["basis"] == "1 cancellation(s) and 1 upgrade(s) over 6 subscription-months"
    assert result.assumptions["subscriptions"] == 3  # X (already on v2) and O (another plan) are not selected

    # USD from March's 70 → 75 MRR: actual 7000 × (5/6)^k minor units, proposed adds the 500 difference
    # shrunk by churn and by upgrades, 500 × (5/6)^2k; half-up to the cent. EUR starts from 0: zero throughout.
    usd = [r for r in result.projection if r["currency"] == "USD"]
    eur = [r for r in result.projection if r["currency"] == "EUR"]
    assert [r["month"] for r in usd] == [f"2026-{m:02d}" for m in range(4, 13)] + ["2027-01", "2027-02", "2027-03"]
    expected = []
    for k in range(1, 13):
        actual = half_up(7000 * Fraction(5, 6) ** k)
        expected.append((actual, actual + half_up(500 * Fraction(5, 6) ** (2 * k))))
    assert [(r["actual_mrr"].minor_units, r["proposed_mrr"].minor_units) for r in usd] == expected
    assert expected[:2] == [(5833, 6180), (4861, 5102)]  # April: 58.33 → 61.80; May: 48.61 → 51.02
    assert all(r["actual_revenue"] == r["actual_mrr"] and r["proposed_revenue"] == r["proposed_mrr"] for r in usd)
    assert {(r["actual_mrr"].minor_units, r["proposed_mrr"].minor_units) for r in eur} == {(0, 0)}

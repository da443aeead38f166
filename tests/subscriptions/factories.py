"""In-memory builders for aggregate unit tests (no database)."""

from __future__ import annotations

from datetime import datetime

from sharedkernel.values import Money
from subscriptions.models import Customer, Plan, Subscription
from subscriptions.values import CustomerDetails, PlanTerms
from tests.conftest import at


def plan(code="pro-m", tier="professional", interval="month", prices=("49.00 USD",), trial_days=14, **extra) -> Plan:
    money = [Money(*p.split()) for p in prices]
    terms = PlanTerms(name=code.title(), trial_days=trial_days, prices=money, **extra)
    p = Plan.define(code=code, tier=tier, interval=interval, terms=terms, at=at("2025-01-01 00:00"))
    p.pull_events()
    return p


def customer(**kw) -> Customer:
    details = CustomerDetails(
        name=kw.get("name", "Ada Lovelace"),
        email=kw.get("email", "ada@example.com"),
        currency=kw.get("currency", "USD"),
        country=kw.get("country", "GB"),
    )
    c = Customer.register(details, at=at("2025-01-01 00:00"))
    c.pull_events()
    return c


def subscription(
    *, trial=False, start: datetime | None = None, on: Plan | None = None, cust=None, status=None
) -> Subscription:
    sub = Subscription.start(
        customer=cust or customer(), plan=on or plan(), currency="USD", trial=trial, at=start or at("2025-01-31 10:00")
    )
    sub.pull_events()
    if status == "active" and not trial:
        sub.activate(at=sub.current_period_start)
        sub.pull_events()
    return sub


def names(sub) -> list[str]:
    return [e.event_type.split(".")[1] for e in sub.recorded_events]

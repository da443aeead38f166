"""The impact replay of a scripted history equals figures worked out by hand.

History (USD): plan v1 10.00/month with 100 api calls included and 0.10 per call over;
v2 12.00/month, 50 included, 0.20 over. A migration moves every v1 subscription to v2.
A, B, C start on Jan 1; A used 120 calls in January (2.00 overage billed on Feb 1);
C cancels on Feb 15; B used 80 calls in February (nothing billed, 30 over under v2).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from analytics import impact
from analytics.models import MrrMovement, MrrSnapshot, RevenueEntry, SubscriptionView
from sharedkernel.models import EventDelivery, StoredEvent
from tests.analytics.helpers import price_migration_drafted
from tests.helpers import publish

PLAN = str(uuid.uuid4())
MIGRATION = str(uuid.uuid4())
#: "Now" for the edges (page, API, CSV), which read the system clock: the history's months stay in
#: their 12-month window whatever day the suite runs.
NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def edges_now(monkeypatch):
    from sharedkernel.clock import SystemClock

    monkeypatch.setattr(SystemClock, "now", lambda self: NOW)


def usd(amount: str) -> dict:
    return {"amount": amount, "currency": "USD"}


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def plan_event(event_type: str, version: int, price: str, included: int, rate: str) -> None:
    payload = {
        "plan_id": PLAN,
        "code": "pro",
        "name": "Pro",
        "tier": "professional",
        "interval": "month",
        "trial_days": 0,
        "prices": [usd(price)],
        "features": [],
        "included_usage": {"api": included},
        "overage_rates": {"api": [usd(rate)]},
        "version": version,
        "current_from": at(1, 1).isoformat(),
    }
    publish(event_type, payload, aggregate_type="Plan", aggregate_id=PLAN, occurred_on=at(1, 1))


def sub_event(name: str, sub: str, customer: str, when: datetime, status: str = "active", **extra) -> None:
    payload = {
        "subscription_id": sub,
        "customer_id": customer,
        "status": status,
        "price": usd("10.00"),
        "plan": {"id": PLAN, "code": "pro", "name": "Pro", "tier": "professional", "interval": "month", "version": 1},
        **extra,
    }
    publish(f"subscriptions.{name}", payload, aggregate_type="Subscription", aggregate_id=sub, occurred_on=when)


def invoice(sub: str, customer: str, when: datetime, *lines: tuple[str, str, str | None]) -> None:
    payload = {
        "invoice_id": str(uuid.uuid4()),
        "subscription_id": sub,
        "customer_id": customer,
        "currency": "USD",
        "billing_reason": "subscription_cycle",
        "issued_at": when.isoformat(),
        "lines": [{"description": k, "kind": k, "amount": usd(a), "metric": m} for k, a, m in lines],
    }
    publish("billing.InvoiceFinalized", payload, aggregate_type="Invoice", occurred_on=when)


def usage(sub: str, customer: str, when: datetime, used: int) -> None:
    payload = {
        "subscription_id": sub,
        "customer_id": customer,
        "currency": "USD",
        "metrics": [{"metric": "api", "used": used, "included": 100}],
        "final": False,
    }
    publish("subscriptions.UsageCalculated", payload, aggregate_type="UsagePeriod", occurred_on=when)


@pytest.fixture
def history():
    return script_history()


def script_history() -> dict[str, tuple[str, str]]:
    """The history of the module docstring; returns name → (subscription id, customer id)."""
    plan_event("subscriptions.PlanCreated", 1, "10.00", 100, "0.10")
    plan_event("subscriptions.PlanUpdated", 2, "12.00", 50, "0.20")
    price_migration_drafted(MIGRATION, PLAN, effective_from=at(4, 1), occurred_on=at(1, 1))
    subs = {name: (str(uuid.uuid4()), str(uuid.uuid4())) for name in "ABC"}
    for sub, customer in subs.values():
        sub_event("SubscriptionCreated", sub, customer, at(1, 1))
        invoice(sub, customer, at(1, 1), ("plan", "10.00", None))
    a, b, c = subs["A"], subs["B"], subs["C"]
    usage(*a, at(1, 31), 120)
    for sub, customer in subs.values():
        sub_event("SubscriptionRenewed", sub, customer, at(2, 1))
    invoice(*a, at(2, 1), ("plan", "10.00", None), ("usage", "2.00", "api"))
    invoice(*b, at(2, 1), ("plan", "10.00", None))
    invoice(*c, at(2, 1), ("plan", "10.00", None))
    sub_event("SubscriptionCancelled", *c, at(2, 15), status="cancelled")
    usage(*b, at(2, 28), 80)
    for sub, customer in (a, b):
        sub_event("SubscriptionRenewed", sub, customer, at(3, 1))
        invoice(sub, customer, at(3, 1), ("plan", "10.00", None))
    return subs


def amounts(row: dict) -> tuple[str, ...]:
    keys = ("actual_revenue", "proposed_revenue", "actual_mrr", "proposed_mrr")
    return (row["month"], *(str(row[k].amount) for k in keys))


@pytest.mark.django_db
def test_the_replayed_figures_equal_the_hand_computed_ones(history):
    result = impact.impact_of(MIGRATION, now=at(3, 15), months=3)

    # Jan: 3 × 10 actual, 3 × 12 proposed. Feb: 10+2 + 10 + 10 actual; 12 + 70×0.20 + 12 + 12 proposed.
    # Mar: 10 + 10 actual; 12 + (12 + 30×0.20) proposed. MRR at month end: 3, then 2 active subscriptions.
    assert [amounts(row) for row in result.months] == [
        ("2026-01", "30.00", "36.00", "30.00", "36.00"),
        ("2026-02", "32.00", "50.00", "20.00", "24.00"),
        ("2026-03", "20.00", "30.00", "20.00", "24.00"),
    ]
    # A's bill rises most: 32.00 → 12 + (12 + 14) + 12 = 50.00; then B 30.00 → 42.00; C 20.00 → 24.00.
    a, b, c = history["A"][1], history["B"][1], history["C"][1]
    assert [(r["customer"], str(r["change"].amount)) for r in result.customers] == [
        (a, "18.00"),
        (b, "12.00"),
        (c, "4.00"),
    ]
    # Overage: 2.00 billed; under v2 70 + 30 calls over at 0.20 = 20.00.
    [overage] = result.overage
    assert (overage["metric"], str(overage["actual"].amount), overage["proposed_units"]) == ("api", "2.00", 100)
    assert str(overage["proposed"].amount) == "20.00"
    # Churn: 1 cancellation over 3 (Feb) + 2 (Mar) subscription-months = 0.2; no upgrades.
    assert result.assumptions["monthly_churn_rate"] == "0.2000"
    assert result.assumptions["monthly_upgrade_rate"] == "0.0000"
    # April: 20.00 × 0.8 actual; plus the 4.00 difference × 0.8 proposed.
    assert amounts(result.projection[0]) == ("2026-04", "16.00", "19.20", "16.00", "19.20")
    assert len(result.projection) == 12


@pytest.mark.django_db
def test_the_sandbox_writes_no_table(history):
    tables = (StoredEvent, EventDelivery, SubscriptionView, MrrMovement, MrrSnapshot, RevenueEntry)
    before = [model.objects.count() for model in tables]

    impact.impact_of(MIGRATION, now=at(3, 15), months=3)

    assert [model.objects.count() for model in tables] == before


@pytest.mark.django_db
def test_an_unknown_migration_is_refused(history):
    with pytest.raises(impact.UnknownMigration):
        impact.impact_of(str(uuid.uuid4()), now=at(3, 15), months=3)


@pytest.mark.django_db
def test_the_api_answers_the_contract_shape(history):
    from tests.helpers import api_client, staff_user

    client = api_client(staff_user())
    body = client.get(f"/api/v1/price-migrations/{MIGRATION}/impact/?months=12").json()

    assert set(body) >= {"months", "projection", "assumptions"}
    january = next(row for row in body["months"] if row["month"] == "2026-01")
    assert january == {
        "month": "2026-01",
        "currency": "USD",
        "actual_revenue": usd("30.00"),
        "proposed_revenue": usd("36.00"),
        "actual_mrr": usd("30.00"),
        "proposed_mrr": usd("36.00"),
    }
    assert len(body["projection"]) == 12 and set(body["projection"][0]) == set(january)
    assert body["assumptions"]["monthly_churn_rate"]


@pytest.mark.django_db
@pytest.mark.parametrize("months", ["0", "25", "x", "-1"])
def test_months_outside_1_to_24_is_a_400(history, months):
    from tests.helpers import api_client, staff_user

    response = api_client(staff_user()).get(f"/api/v1/price-migrations/{MIGRATION}/impact/?months={months}")

    assert response.status_code == 400 and response.json()["error"]["details"] == {"months": months}


@pytest.mark.django_db
def test_an_unknown_migration_is_a_404(history):
    from tests.helpers import api_client, staff_user

    response = api_client(staff_user()).get(f"/api/v1/price-migrations/{uuid.uuid4()}/impact/")

    assert response.status_code == 404 and response.json()["error"]["code"]


@pytest.mark.django_db
def test_a_price_change_is_its_own_mrr_movement_not_expansion():
    from analytics.policies import project_subscriptions

    sub, customer = str(uuid.uuid4()), str(uuid.uuid4())
    plan = {"id": PLAN, "code": "pro", "name": "Pro", "tier": "professional", "interval": "month", "version": 1}
    created = publish(
        "subscriptions.SubscriptionCreated",
        {"subscription_id": sub, "customer_id": customer, "plan": plan, "status": "active", "price": usd("10.00")},
        aggregate_id=sub,
        occurred_on=at(1, 1),
    )
    changed = publish(
        "subscriptions.PriceChanged",
        {
            "subscription_id": sub,
            "customer_id": customer,
            "plan": {**plan, "version": 2},
            "status": "active",
            "previous_status": "active",
            "migration_id": MIGRATION,
            "from_version": 1,
            "to_version": 2,
            "old_price": usd("10.00"),
            "new_price": usd("12.00"),
            "effective_at": at(2, 1).isoformat(),
        },
        aggregate_id=sub,
        occurred_on=at(2, 1),
    )

    project_subscriptions([created, changed])

    kinds = list(MrrMovement.objects.order_by("event_position").values_list("kind", "amount_minor"))
    assert kinds == [("new", 1000), ("price_change", 200)]

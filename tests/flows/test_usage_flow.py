"""Usage billed at renewal, on a test clock, through the real worker."""

from __future__ import annotations

import pytest

from billing.models import Invoice
from tests.conftest import wait_until_handled
from tests.flows.api import make_plan, money, new_customer
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.flow


def metered_plan(staff, code: str, rate: str) -> dict:
    """A 50.00 USD monthly plan with 1,000 API calls included and ``rate`` per call over."""
    return make_plan(
        staff,
        code,
        "50.00",
        name="API",
        included_usage={"api_calls": 1000},
        overage_rates={"api_calls": money(rate)},
    )


def customers_with_cards(staff, *names: str) -> tuple[dict, list[dict]]:
    """A test clock at 2025-05-01 and a USD customer with a working card on it per name."""
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": "2025-05-01T00:00:00Z"}, format="json").json()
    people = [new_customer(staff, name, clock, email=f"{name}@example.com") for name in names]
    wait_until_handled()
    for person in people:
        staff.put(f"/api/v1/customers/{person['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
    return clock, people


def test_overage_is_added_to_the_renewal_invoice_after_the_grace_window_including_late_usage(flow, settings):
    settings.USAGE_GRACE_SECONDS = 3600
    staff = api_client(staff_user())
    plan = metered_plan(staff, "api-m", "0.01001")  # a unit rate finer than a cent (API.md: up to 6 decimals)
    clock, [customer] = customers_with_cards(staff, "Ada")
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"]}, format="json").json()
    wait_until_handled()

    def report(key, quantity, when):
        body = {
            "subscription": sub["id"],
            "metric": "api_calls",
            "quantity": quantity,
            "timestamp": when,
            "idempotency_key": key,
        }
        return staff.post("/api/v1/usage/", body, format="json").json()

    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-05-21T00:00:00Z"}, format="json")
    assert report("k1", 1200, "2025-05-20T10:00:00Z")["accepted"] == 1
    assert report("k1", 1200, "2025-05-20T10:00:00Z")["duplicates"] == 1  # a retry of the same call
    [api] = staff.get(f"/api/v1/subscriptions/{sub['id']}/usage/").json()["metrics"]
    assert api["rate"] == {"amount": "0.01001", "currency": "USD"}
    assert api["overage_amount"] == {"amount": "2.00", "currency": "USD"}  # 200 × 0.01001 = 2.002

    # the period ends: the renewal invoice waits for late usage
    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-06-01T00:10:00Z"}, format="json")
    wait_until_handled()
    renewal = Invoice.objects.get(subscription_id=sub["id"], billing_reason="subscription_cycle")
    assert renewal.status == "draft" and renewal.awaiting_usage
    assert report("late", 300, "2025-05-31T23:59:00Z")["accepted"] == 1  # late, within the hour of grace

    # the grace window passes: overage (1500 − 1000) × 0.01001 = 5.005 is billed, rounded half-up once
    # for the line (5.01; per unit it would be 500 × 0.01 = 5.00), with the new period's plan line
    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-06-01T01:00:01Z"}, format="json")
    wait_until_handled()
    bill = staff.get(f"/api/v1/invoices/{renewal.id}/").json()
    assert bill["status"] == "paid"
    assert [(line["kind"], line["amount"]["amount"]) for line in bill["lines"]] == [
        ("plan", "50.00"),
        ("usage", "5.01"),
        ("tax", "0.00"),
    ]
    assert bill["lines"][1]["quantity"] == 500 and bill["lines"][1]["metric"] == "api_calls"
    assert "at 0.01001 USD each" in bill["lines"][1]["description"]
    assert bill["amount_due"] == {"amount": "55.01", "currency": "USD"}
    # and the new period starts from zero
    assert staff.get(f"/api/v1/subscriptions/{sub['id']}/usage/").json()["metrics"][0]["used"] == 0


def test_a_grandfathered_subscription_keeps_its_versions_included_usage_and_overage_rate(flow, settings):
    settings.USAGE_GRACE_SECONDS = 60
    staff = api_client(staff_user())
    # given a metered plan (v1: 1,000 calls included, 0.01 over) and Ada subscribed on it
    plan = metered_plan(staff, "api-v", "0.01")
    clock, people = customers_with_cards(staff, "Ada", "Bob")
    ada = staff.post("/api/v1/subscriptions/", {"customer": people[0]["id"], "plan": plan["id"]}, format="json").json()
    wait_until_handled()

    # when staff publish v2 (same price, 500 included, 0.02 over) and Bob subscribes on it
    v2 = {
        "prices": [{"amount": "50.00", "currency": "USD"}],
        "included_usage": {"api_calls": 500},
        "overage_rates": {"api_calls": [{"amount": "0.02", "currency": "USD"}]},
    }
    assert staff.post(f"/api/v1/plans/{plan['id']}/versions/", v2, format="json").status_code == 201
    bob = staff.post("/api/v1/subscriptions/", {"customer": people[1]["id"], "plan": plan["id"]}, format="json").json()
    wait_until_handled()
    assert (ada["plan_version"], bob["plan_version"]) == (1, 2)
    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-05-11T00:00:00Z"}, format="json")
    for sub in (ada, bob):
        body = {
            "subscription": sub["id"],
            "metric": "api_calls",
            "quantity": 1200,
            "timestamp": "2025-05-10T10:00:00Z",
            "idempotency_key": f"k-{sub['id']}",
        }
        assert staff.post("/api/v1/usage/", body, format="json").json()["accepted"] == 1

    # then each is metered on its own version's terms: Ada 200 over at 0.01, Bob 700 over at 0.02
    shown = {
        name: staff.get(f"/api/v1/subscriptions/{sub['id']}/usage/").json()["metrics"][0]
        for name, sub in (("ada", ada), ("bob", bob))
    }
    assert (shown["ada"]["included"], shown["ada"]["rate"]["amount"], shown["ada"]["overage_amount"]["amount"]) == (
        1000,
        "0.01",
        "2.00",
    )
    assert (shown["bob"]["included"], shown["bob"]["rate"]["amount"], shown["bob"]["overage_amount"]["amount"]) == (
        500,
        "0.02",
        "14.00",
    )
    # the quota each crossed is its own version's
    from sharedkernel.models import StoredEvent

    exceeded = StoredEvent.objects.filter(event_type="subscriptions.UsageQuotaExceeded")
    assert {e.payload["subscription_id"]: e.payload["included"] for e in exceeded} == {ada["id"]: 1000, bob["id"]: 500}

    # and the renewal bills each its own version's overage
    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-06-01T00:02:00Z"}, format="json")
    wait_until_handled()
    for sub, usage_line in ((ada, "2.00"), (bob, "14.00")):
        renewal = Invoice.objects.get(subscription_id=sub["id"], billing_reason="subscription_cycle")
        bill = staff.get(f"/api/v1/invoices/{renewal.id}/").json()
        assert [(line["kind"], line["amount"]["amount"]) for line in bill["lines"] if line["kind"] != "tax"] == [
            ("plan", "50.00"),
            ("usage", usage_line),
        ], bill
    calculated = StoredEvent.objects.filter(event_type="subscriptions.UsageCalculated")
    included = {e.payload["subscription_id"]: e.payload["metrics"][0]["included"] for e in calculated}
    assert included == {ada["id"]: 1000, bob["id"]: 500}


def test_a_grandfathered_subscription_is_still_billed_its_overage_when_the_new_version_meters_nothing(flow, settings):
    settings.USAGE_GRACE_SECONDS = 60
    staff = api_client(staff_user())
    # given Ada on a metered v1 (1,000 calls included, 0.01 over)
    plan = metered_plan(staff, "api-g", "0.01")
    clock, [ada] = customers_with_cards(staff, "Ada")
    sub = staff.post("/api/v1/subscriptions/", {"customer": ada["id"], "plan": plan["id"]}, format="json").json()
    wait_until_handled()

    # when v2 (unmetered: a flat 60.00) becomes current, and Ada, still on v1, uses 1,200 calls
    v2 = {"prices": [{"amount": "60.00", "currency": "USD"}], "included_usage": {}, "overage_rates": {}}
    assert staff.post(f"/api/v1/plans/{plan['id']}/versions/", v2, format="json").status_code == 201
    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-05-11T00:00:00Z"}, format="json")
    body = {
        "subscription": sub["id"],
        "metric": "api_calls",
        "quantity": 1200,
        "timestamp": "2025-05-10T10:00:00Z",
        "idempotency_key": "g1",
    }
    assert staff.post("/api/v1/usage/", body, format="json").json()["accepted"] == 1

    # then her renewal bills her 50.00 and her 200 calls over are still billed at 0.01 (2.00)
    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-06-01T00:02:00Z"}, format="json")
    wait_until_handled()
    lines = [
        (line["kind"], line["amount"]["amount"])
        for i in Invoice.objects.filter(subscription_id=sub["id"]).exclude(billing_reason="subscription_create")
        for line in staff.get(f"/api/v1/invoices/{i.id}/").json()["lines"]
        if line["kind"] != "tax"
    ]
    assert sorted(lines) == [("plan", "50.00"), ("usage", "2.00")]

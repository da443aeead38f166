"""A scripted month on a test clock, through the real worker: MRR, revenue and churn equal the hand-computed
figures, and replaying the event store into empty projections gives the same figures again."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.management import call_command

from analytics import queries
from analytics.models import MrrMovement, RevenueEntry, SubscriptionView
from tests.conftest import wait_until_handled
from tests.flows.api import make_plan, new_customer
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.flow


def usd(amount: str) -> dict:
    return {"amount": amount, "currency": "USD"}


def figures(staff) -> dict:
    return {
        "mrr": staff.get("/api/v1/analytics/mrr/", {"currency": "USD"}).json(),
        "revenue": staff.get("/api/v1/analytics/revenue/", {"group": "month"}).json(),
        "churn": staff.get("/api/v1/analytics/churn/", {"period": "month"}).json(),
        "risk": sorted((str(v.subscription_id), v.churn_risk) for v in SubscriptionView.objects.all()),
    }


def test_a_scripted_month_gives_the_hand_computed_figures_and_replay_reproduces_them(flow):
    staff = api_client(staff_user())

    basic, pro, annual = (
        make_plan(staff, "basic", "10.00", tier="basic"),
        make_plan(staff, "pro", "30.00", trial_days=7),
        make_plan(staff, "annual", "120.00", interval="year"),
    )
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": "2025-03-01T00:00:00Z"}, format="json").json()

    def advance(to):
        staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": to}, format="json")
        wait_until_handled()

    def customer(name, card):
        c = new_customer(staff, name, clock)
        wait_until_handled()
        staff.put(f"/api/v1/customers/{c['id']}/payment-method/", {"token": card}, format="json")
        return c

    def subscribe(c, p, trial=False):
        sub = staff.post(
            "/api/v1/subscriptions/", {"customer": c["id"], "plan": p["id"], "trial": trial}, format="json"
        ).json()
        wait_until_handled()
        return sub

    # Mar 1: A on Basic, B trials Pro for 7 days, C on the annual plan, D's card declines
    a = subscribe(customer("A", "pm_card_visa"), basic)
    b = subscribe(customer("B", "pm_card_visa"), pro, trial=True)
    c = subscribe(customer("C", "pm_card_visa"), annual)
    subscribe(customer("D", "pm_card_chargeDeclined"), basic)
    advance("2025-03-08T00:00:01Z")  # B's trial converts: +30.00
    advance("2025-03-10T00:00:00Z")
    staff.post(f"/api/v1/subscriptions/{a['id']}/change-plan/", {"plan": pro["id"]}, format="json")  # +20.00
    wait_until_handled()
    advance("2025-03-20T00:00:00Z")
    staff.post(f"/api/v1/subscriptions/{b['id']}/change-plan/", {"plan": basic["id"]}, format="json")  # −20.00
    wait_until_handled()
    advance("2025-03-25T00:00:00Z")
    staff.post(f"/api/v1/subscriptions/{c['id']}/cancel/", {"reason": "budget"}, format="json")  # −10.00
    wait_until_handled()
    advance("2025-03-26T00:00:00Z")
    [first_a] = staff.get("/api/v1/payments/", {"customer": a["customer"], "status": "succeeded"}).json()["results"][
        -1:
    ]
    staff.post(f"/api/v1/payments/{first_a['id']}/refund/", {"amount": usd("4.00"), "reason": "outage"}, format="json")
    wait_until_handled()
    advance("2025-04-01T00:00:01Z")  # A renews on Pro

    # MRR by hand: A 30 (Pro) + B 10 (Basic) + C 0 (cancelled) + D 0 (never paid) = 40.00
    live = figures(staff)
    [usd_mrr] = live["mrr"]["results"]
    assert usd_mrr["mrr"] == usd("40.00")
    assert [(p["date"], p["mrr"]["amount"]) for p in usd_mrr["series"]] == [
        ("2025-03-01", "20.00"),  # A 10 + C 120/12
        ("2025-03-08", "50.00"),  # B converts
        ("2025-03-10", "70.00"),  # A upgrades
        ("2025-03-20", "50.00"),  # B downgrades
        ("2025-03-25", "40.00"),  # C cancels
    ]
    kinds = {k: sum(m.amount_minor for m in MrrMovement.objects.filter(kind=k)) for k in MrrMovement.Kind.values}
    assert kinds == {
        "new": 5000,
        "expansion": 2000,
        "contraction": -2000,
        "churned": -1000,
        "reactivation": 0,
        "price_change": 0,  # a price migration's movement, its own kind (none in this month)
    }

    # revenue by hand: A 10.00 − 4.00 refund (Basic); B 30.00 + A's upgrade 14.19 (Pro: 21.29 − 7.10 for 22 of
    # 31 days); C 120.00 (Annual); April: A's renewal 30.00 (Pro)
    revenue = {(r["period"][:7], r["plan"]): r["revenue"]["amount"] for r in live["revenue"]["results"]}
    assert revenue == {
        ("2025-03", "Basic"): "6.00",
        ("2025-03", "Pro"): "44.19",
        ("2025-03", "Annual"): "120.00",
        ("2025-04", "Pro"): "30.00",
    }
    # churn: nobody was paying on Mar 1 (0 of 0; C, who started that day, left); on Apr 1 A and B were: 0 of 2
    assert [(r["period"], r["active_at_start"], r["cancelled"]) for r in live["churn"]["results"]] == [
        ("2025-03-01", 0, 1),
        ("2025-04-01", 2, 0),
    ]
    assert queries.churn(today=date(2025, 4, 1))[-1].rate == 0
    # B downgraded: on the at-risk list with the reason
    b_view = SubscriptionView.objects.get(pk=b["id"])
    assert b_view.churn_risk == 10 and b_view.risk_factors() == [("1 downgrade(s)", 10)]

    # replay: empty every projection, rebuild from the event store, same figures
    SubscriptionView.objects.all().delete()
    MrrMovement.objects.all().delete()
    RevenueEntry.objects.all().delete()
    assert figures(staff)["mrr"]["results"][0]["series"] == []  # really empty
    call_command("replay_events", "--context", "analytics", "--reset")
    assert figures(staff) == live

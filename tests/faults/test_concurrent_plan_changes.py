"""50 plan changes of one subscription at once: each accepted one has exactly one effect (one
PlanChanged, one prorated invoice charged once — or one credit for a downgrade), every other one
answers 409 ``concurrent_update``; none answers 5xx."""

from __future__ import annotations

import threading
from collections import Counter

from django.contrib.auth import get_user_model
from django.db import connection

from billing.models import CreditEntry, Invoice, Payment
from sharedkernel.models import StoredEvent
from subscriptions.models import Subscription
from tests.faults.bill_run import populate
from tests.faults.conftest import FAULTS, settle_everything
from tests.helpers import all_at_once, api_client, staff_user

pytestmark = FAULTS

CHANGES = 50


def define_plans(settings, count: int) -> list[str]:
    from sharedkernel.bus import drain
    from sharedkernel.values import Money
    from subscriptions import commands

    settings.EVENT_DISPATCH = "manual"
    try:
        ids = [
            str(
                commands.define_plan(
                    code=f"p{i}",
                    name=f"Plan {i}",
                    tier="professional",
                    interval="month",
                    trial_days=0,
                    prices=[Money(f"{31 + i}.00", "USD")],
                ).pk
            )
            for i in range(count)
        ]
        drain()
    finally:
        settings.EVENT_DISPATCH = "celery"
    return ids


def test_fifty_concurrent_plan_changes_each_accepted_one_bills_once_the_rest_get_409(flow, settings):
    # given an active, paid subscription on a 30.00 plan and 50 dearer plans
    population = populate(1, settings)
    [sub_id] = population.subscriptions
    plans = define_plans(settings, CHANGES)
    staff_user()
    User = get_user_model()
    before_invoices = Invoice.objects.count()

    # when 50 clients ask for 50 different plans at the same moment
    start = threading.Barrier(CHANGES, timeout=30)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def change(plan_id: str) -> None:
        try:
            client = api_client(User.objects.get(username="staff"))
            start.wait()
            response = client.post(f"/api/v1/subscriptions/{sub_id}/change-plan/", {"plan": plan_id}, format="json")
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    all_at_once(change, [(plan_id,) for plan_id in plans])
    settle_everything()

    # then every request answered 200 or 409 concurrent_update, never 5xx
    codes = Counter(status for status, _ in answers)
    assert sum(codes.values()) == CHANGES and set(codes) <= {200, 409}, codes
    assert {body["error"]["code"] for status, body in answers if status == 409} <= {"concurrent_update"}
    accepted = codes[200]
    assert accepted >= 1 and codes[409] >= 1, codes  # they did race

    # and each accepted change is one PlanChanged with one effect in Billing
    changes = list(
        StoredEvent.objects.filter(aggregate_id=sub_id, event_type="subscriptions.PlanChanged").order_by("position")
    )
    assert len(changes) == accepted
    upgrades = sum(1 for e in changes if e.payload["direction"] == "upgrade")
    prorated = Invoice.objects.filter(subscription_id=sub_id, billing_reason="subscription_update")
    assert prorated.count() == upgrades
    assert Invoice.objects.count() == before_invoices + upgrades
    assert sorted(set(prorated.values_list("status", flat=True))) == (["paid"] if upgrades else [])
    assert Payment.objects.filter(invoice_id__in=prorated.values("id")).count() == upgrades
    customer_id = population.customers[0]
    credits = CreditEntry.objects.filter(customer_id=customer_id, source=CreditEntry.Source.PRORATION)
    assert credits.count() == accepted - upgrades
    # the subscription is on the plan of the last accepted change, at one version per change
    sub = Subscription.objects.get(pk=sub_id)
    assert str(sub.plan_id) == changes[-1].payload["plan"]["id"]

"""Read your writes (API.md): what a 2xx answer created can be used in the client's very next call,
while a real worker handles the same deliveries concurrently."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from analytics.models import SubscriptionView
from billing.models import BillingAccount, Invoice
from sharedkernel.bus import run_deliveries
from sharedkernel.models import DeliveryStatus, EventDelivery
from tests.conftest import wait_until_handled
from tests.flows.api import money

pytestmark = pytest.mark.flow


def create(staff, path: str, body: dict) -> dict:
    response = staff.post(path, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_customer_can_attach_a_card_and_subscribe_in_the_calls_right_after_creating_things(staff):
    # given a plan created just now (Billing's copy of it is what the preview reads)
    basic = create(
        staff,
        "/api/v1/plans/",
        {"code": "basic", "name": "Basic", "tier": "basic", "interval": "month", "prices": [money("10.00")]},
    )
    for n in range(8):
        # when a customer is created and, at once, given a card
        customer = create(
            staff,
            "/api/v1/customers/",
            {"name": f"Ada {n}", "email": f"ada{n}@example.com", "currency": "USD", "country": "US"},
        )
        card = staff.put(
            f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json"
        )
        # then the card is attached, never "No such customer"
        assert card.status_code == 200, card.content
        balance = staff.get(f"/api/v1/customers/{customer['id']}/balance/")
        assert balance.status_code == 200 and balance.json()["credit"] == money("0.00")

        # when a paid subscription is created, its first invoice can be read in the next call
        subscription = create(
            staff, "/api/v1/subscriptions/", {"customer": customer["id"], "plan": basic["id"], "trial": False}
        )
        invoices = staff.get("/api/v1/invoices/", {"subscription": subscription["id"]})
        assert invoices.status_code == 200
        [invoice] = invoices.json()["results"]
        assert invoice["subscription"] == subscription["id"]
        assert invoice["total"]["currency"] == "USD"
        # and staff analytics already count the subscription
        assert SubscriptionView.objects.filter(pk=subscription["id"]).exists()

    # and a plan created just now can be previewed against at once
    pro = create(
        staff,
        "/api/v1/plans/",
        {"code": "pro", "name": "Pro", "tier": "professional", "interval": "month", "prices": [money("30.00")]},
    )
    preview = staff.get(f"/api/v1/subscriptions/{subscription['id']}/proration-preview/", {"plan": pro["id"]})
    # the plan is known at once: the answer is the plan-change policy's, never "no such plan" — while
    # the first payment is still being charged the change is refused as the command would refuse it
    # (pending_payment), and once it is paid the preview prices the upgrade
    if preview.status_code == 409:
        assert preview.json()["error"]["code"] == "invalid_transition", preview.content
        wait_until_handled()
        preview = staff.get(f"/api/v1/subscriptions/{subscription['id']}/proration-preview/", {"plan": pro["id"]})
    assert preview.status_code == 200, preview.content
    assert preview.json()["needs_approval"] is False
    assert BillingAccount.objects.count() == 8
    assert Invoice.objects.filter(subscription_id__isnull=False).count() >= 8


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's; SQLite serializes writers")
def test_a_request_waits_for_the_worker_that_holds_its_delivery_instead_of_skipping_it(staff):
    # given a customer whose account-opening delivery is held (locked) by "a worker"
    customer = create(
        staff, "/api/v1/customers/", {"name": "Bo", "email": "bo@example.com", "currency": "USD", "country": "US"}
    )
    delivery = EventDelivery.objects.filter(handler="billing.open_billing_account").latest("pk")
    assert delivery.status == DeliveryStatus.DONE  # the request ran it before answering
    EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.PENDING)

    locked, release, results = threading.Event(), threading.Event(), []

    def worker_holding_it():
        with transaction.atomic():
            EventDelivery.objects.select_for_update().get(pk=delivery.pk)
            locked.set()
            release.wait(10)
            EventDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DONE)
        connection.close()

    def request_side():
        results.append(run_deliveries("billing.open_billing_account", [delivery.pk], wait=True))
        connection.close()

    holder = threading.Thread(target=worker_holding_it)
    holder.start()
    assert locked.wait(10)
    waiter = threading.Thread(target=request_side)
    waiter.start()
    waiter.join(0.5)
    # then the request is still waiting while the worker holds the row …
    assert waiter.is_alive()
    release.set()
    holder.join(10)
    waiter.join(10)
    # … and, once the worker committed, finds the delivery done and runs nothing twice
    assert results == [0]
    assert BillingAccount.objects.filter(pk=customer["id"]).count() == 1

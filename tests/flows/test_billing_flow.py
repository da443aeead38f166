"""Billing end to end on test clocks: API → events → the real worker → policies → beat jobs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import BillingAccount, Invoice, Payment, TaxRate
from subscriptions.models import Subscription
from tests.conftest import at, wait_until_handled
from tests.flows.api import advance, invoices, make_plan, money, new_customer
from tests.helpers import event_types

pytestmark = pytest.mark.flow


def on_clock(staff, when: str, *, card: str | None = "pm_card_visa", country="GB"):
    clock = staff.post("/api/v1/test-clocks/", {"frozen_time": when}, format="json").json()
    customer = new_customer(staff, "Ada", clock, country=country)
    wait_until_handled()
    if card:
        put = staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": card}, format="json")
        assert put.status_code == 200, put.content
    return clock, customer


def test_trial_converts_first_invoice_is_paid_and_each_renewal_bills_once(staff):
    TaxRate.objects.create(country="US", region="NY", rate=Decimal("0.08875"), name="New York sales tax")
    pro = make_plan(staff, "pro", "30.00", trial_days=14)
    clock, customer = on_clock(staff, "2025-01-31T10:00:00Z", country="US")
    BillingAccount.objects.filter(pk=customer["id"]).update(region="NY")
    sub = staff.post(
        "/api/v1/subscriptions/", {"customer": customer["id"], "plan": pro["id"], "trial": True}, format="json"
    ).json()
    wait_until_handled()
    assert invoices(staff, sub["id"]) == []  # a trial is not billed

    advance(staff, clock, "2025-02-14T10:00:01Z")  # the trial ends: activated, first invoice paid
    [first] = invoices(staff, sub["id"])
    assert first["status"] == "paid" and first["billing_reason"] == "subscription_create"
    assert first["tax"] == money("2.66")  # 30.00 × 8.875 % = 2.6625 → 2.66
    assert first["amount_due"] == money("32.66")
    assert (first["period_start"], first["period_end"]) == ("2025-02-14T10:00:00Z", "2025-03-14T10:00:00Z")
    assert Subscription.objects.get(pk=sub["id"]).status == "active"

    advance(staff, clock, "2025-03-14T10:00:01Z")  # renewal
    advance(staff, clock, "2025-03-14T12:00:00Z")  # the clock moving on bills nothing more
    bills = invoices(staff, sub["id"])
    assert [b["billing_reason"] for b in bills] == ["subscription_create", "subscription_cycle"]
    assert bills[1]["status"] == "paid" and bills[1]["period_start"] == "2025-03-14T10:00:00Z"
    numbers = [b["number"] for b in bills]
    assert numbers == sorted(numbers) and len(set(numbers)) == 2
    # one chain per renewal: SubscriptionRenewed → InvoiceGenerated → … → PaymentSucceeded share a correlation id
    renewal = Invoice.objects.get(pk=bills[1]["id"])
    from sharedkernel.models import StoredEvent

    chain = set(StoredEvent.objects.filter(aggregate_id=str(renewal.id)).values_list("correlation_id", flat=True))
    renewed = StoredEvent.objects.get(aggregate_id=sub["id"], event_type="subscriptions.SubscriptionRenewed")
    assert chain == {renewed.correlation_id}


def test_upgrade_charges_the_prorated_difference_and_downgrade_leaves_credit_for_the_next_invoice(staff):
    basic = make_plan(staff, "basic", "10.00", tier="basic")
    pro = make_plan(staff, "pro", "30.00")
    clock, customer = on_clock(staff, "2025-04-01T00:00:00Z")
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": basic["id"]}, format="json").json()
    wait_until_handled()
    assert Subscription.objects.get(pk=sub["id"]).status == "active"

    advance(staff, clock, "2025-04-16T00:00:00Z")  # half of April left
    preview = staff.get(f"/api/v1/subscriptions/{sub['id']}/proration-preview/", {"plan": pro["id"]}).json()
    assert preview["net"] == money("10.00")
    assert [line["amount"] for line in preview["lines"]] == [money("-5.00"), money("15.00")]
    changed = staff.post(f"/api/v1/subscriptions/{sub['id']}/change-plan/", {"plan": pro["id"]}, format="json")
    assert changed.status_code == 200, changed.content
    wait_until_handled()
    upgrade = invoices(staff, sub["id"])[-1]
    assert upgrade["billing_reason"] == "subscription_update" and upgrade["status"] == "paid"
    assert [line["kind"] for line in upgrade["lines"]] == ["proration", "proration", "tax"]
    assert upgrade["amount_due"] == preview["net"]  # GB: no tax rate configured

    advance(staff, clock, "2025-04-24T00:00:00Z")  # 7 of 30 days left
    down = staff.post(f"/api/v1/subscriptions/{sub['id']}/change-plan/", {"plan": basic["id"]}, format="json")
    assert down.status_code == 200, down.content
    wait_until_handled()
    # 30.00 × 7/30 = 7.00 unused, 10.00 × 7/30 = 2.33 new: 4.67 of credit
    assert staff.get(f"/api/v1/customers/{customer['id']}/balance/").json()["credit"] == money("4.67")
    assert len(invoices(staff, sub["id"])) == 2

    advance(staff, clock, "2025-05-01T00:00:01Z")  # renewal on basic uses the credit
    renewal = invoices(staff, sub["id"])[-1]
    assert renewal["billing_reason"] == "subscription_cycle"
    assert renewal["credit_applied"] == money("4.67") and renewal["amount_due"] == money("5.33")
    assert staff.get(f"/api/v1/customers/{customer['id']}/balance/").json()["credit"] == money("0.00")
    payment = Payment.objects.get(invoice_id=renewal["id"])
    assert payment.amount.amount == Decimal("5.33") and payment.status == "succeeded"


def test_a_declining_card_walks_retries_and_dunning_to_suspension_then_a_new_card_pays_and_resumes(staff):
    pro = make_plan(staff, "pro", "30.00")
    clock, customer = on_clock(staff, "2025-06-01T00:00:00Z")
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": pro["id"]}, format="json").json()
    wait_until_handled()
    assert Subscription.objects.get(pk=sub["id"]).status == "active"
    staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_chargeDeclined"}, format="json")
    wait_until_handled()

    advance(staff, clock, "2025-07-01T00:00:01Z")  # renewal: first charge declines
    renewal = invoices(staff, sub["id"])[-1]
    payment = Payment.objects.get(invoice_id=renewal["id"])
    assert payment.status == "failed" and payment.next_retry_at == at("2025-07-01 01:00")

    attempts_at = []
    for hours, moment in ((1, "2025-07-01T01:00:00Z"), (24, "2025-07-02T00:00:00Z"), (72, "2025-07-04T00:00:00Z")):
        advance(staff, clock, moment)
        payment.refresh_from_db()
        attempts_at.append((hours, payment.attempts))
    assert attempts_at == [(1, 2), (24, 3), (72, 4)]
    assert payment.dunning_started_at == at("2025-07-04 00:00") and payment.next_retry_at is None
    assert Subscription.objects.get(pk=sub["id"]).status == "active"  # dunning has only started

    advance(staff, clock, "2025-07-07T00:00:00Z")  # step 1 (+3 days): reminder and one more charge
    advance(staff, clock, "2025-07-11T00:00:00Z")  # step 2 (+7 days): final warning
    payment.refresh_from_db()
    assert payment.dunning_level == 2 and payment.attempts == 6
    assert Subscription.objects.get(pk=sub["id"]).status == "active"
    advance(staff, clock, "2025-07-18T00:00:00Z")  # step 3 (+14 days): exhausted → suspended
    types = event_types(payment.id)
    assert types.count("billing.PaymentFailed") == 6
    assert [t for t in types if "Dunning" in t] == [
        "billing.DunningStarted",
        "billing.DunningEscalated",
        "billing.DunningEscalated",
        "billing.DunningExhausted",
    ]
    suspended = Subscription.objects.get(pk=sub["id"])
    assert (suspended.status, suspended.suspension_reason) == ("suspended", "non_payment")

    # the customer adds a working card: paid at once, the subscription resumes
    staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
    wait_until_handled()
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.attempt_rows.last().trigger == "payment_method"
    assert staff.get(f"/api/v1/invoices/{renewal['id']}/").json()["status"] == "paid"
    assert Subscription.objects.get(pk=sub["id"]).status == "active"


def test_a_failed_first_payment_leaves_the_subscription_pending_and_refunds_never_exceed_the_payment(staff):
    pro = make_plan(staff, "pro", "30.00")
    clock, customer = on_clock(staff, "2025-06-01T00:00:00Z", card="pm_card_insufficientFunds")
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": pro["id"]}, format="json").json()
    wait_until_handled()
    assert Subscription.objects.get(pk=sub["id"]).status == "pending_payment"
    [first] = invoices(staff, sub["id"])
    assert first["status"] == "finalized"

    staff.put(f"/api/v1/customers/{customer['id']}/payment-method/", {"token": "pm_card_visa"}, format="json")
    wait_until_handled()
    assert Subscription.objects.get(pk=sub["id"]).status == "active"
    [payment] = staff.get("/api/v1/payments/", {"invoice": first["id"]}).json()["results"]
    url = f"/api/v1/payments/{payment['id']}/refund/"
    assert staff.post(url, {"amount": money("25.00"), "reason": "partial"}, format="json").status_code == 201
    refused = staff.post(url, {"amount": money("5.01"), "reason": "too much"}, format="json")
    assert refused.status_code == 409 and "At most 5.00" in refused.json()["error"]["message"]
    assert staff.post(url, {"amount": money("5.00"), "reason": "rest"}, format="json").status_code == 201
    wait_until_handled()
    done = staff.get(f"/api/v1/payments/{payment['id']}/").json()
    assert done["amount_refunded"] == money("30.00") and len(done["refunds"]) == 2
    assert all(r["credit_note_number"].startswith("CN-2025-") for r in done["refunds"])

"""The Billing endpoints of API.md: paths, fields, error codes, scoping."""

from __future__ import annotations

import pytest

from billing import queries
from billing.models import Coupon, Invoice, Payment
from sharedkernel.clock import FixedClock
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan
from tests.conftest import at
from tests.helpers import api_client

pytestmark = pytest.mark.django_db


def customer_client(drain, **kw):
    c, key = subs.register_customer(
        name=kw.get("name", "Cleo"),
        email=kw.get("email", "cleo@example.com"),
        currency="USD",
        country="GB",
        with_api_key=True,
    )
    drain()
    client = api_client()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return c, client


def test_payment_method_put_validates_the_token_and_is_scoped(drain, staff):
    c, mine = customer_client(drain)
    other, _ = customer_client(drain, email="other@example.com")
    response = mine.put(f"/api/v1/customers/{c.id}/payment-method/", {"token": "pm_card_visa"}, format="json")
    assert response.status_code == 200 and response.json() == {"customer": str(c.id), "brand": "visa", "last4": "4242"}
    bad = mine.put(f"/api/v1/customers/{c.id}/payment-method/", {"token": "tok_nope"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["token"]
    assert (
        mine.put(f"/api/v1/customers/{other.id}/payment-method/", {"token": "pm_card_visa"}, format="json").status_code
        == 404
    )
    assert api_client().get(f"/api/v1/customers/{c.id}/balance/").status_code == 401


def test_credits_are_staff_only_and_show_in_the_balance(drain, staff):
    c, mine = customer_client(drain)
    body = {"amount": {"amount": "12.50", "currency": "USD"}, "reason": "Outage"}
    assert mine.post(f"/api/v1/customers/{c.id}/credits/", body, format="json").status_code == 403
    response = staff.post(f"/api/v1/customers/{c.id}/credits/", body, format="json")
    assert response.status_code == 201 and response.json()["credit"] == {"amount": "12.50", "currency": "USD"}
    assert mine.get(f"/api/v1/customers/{c.id}/balance/").json()["credit"] == {"amount": "12.50", "currency": "USD"}
    negative = staff.post(
        f"/api/v1/customers/{c.id}/credits/",
        {"amount": {"amount": "-1.00", "currency": "USD"}, "reason": "x"},
        format="json",
    )
    assert negative.status_code == 400 and "amount" in negative.json()["error"]["details"]
    floaty = staff.post(
        f"/api/v1/customers/{c.id}/credits/",
        {"amount": {"amount": 1.5, "currency": "USD"}, "reason": "x"},
        format="json",
    )
    assert floaty.status_code == 400


def test_invoices_list_detail_filters_and_refund_flow(drain, staff):
    pro = plan(price="30.00 USD")
    c, mine = customer_client(drain)
    mine.put(f"/api/v1/customers/{c.id}/payment-method/", {"token": "pm_card_visa"}, format="json")
    drain()
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    listing = mine.get("/api/v1/invoices/", {"subscription": str(sub.id)}).json()
    assert listing["count"] == 1
    invoice = listing["results"][0]
    assert set(invoice) >= {
        "id",
        "number",
        "customer",
        "subscription",
        "status",
        "lines",
        "subtotal",
        "tax",
        "total",
        "amount_due",
        "currency",
        "period_start",
        "period_end",
        "issued_at",
    }
    assert invoice["status"] == "paid" and invoice["lines"][0]["kind"] == "plan"
    assert invoice["total"] == {"amount": "30.00", "currency": "USD"}
    assert mine.get("/api/v1/invoices/", {"status": "draft"}).json()["count"] == 0
    _, stranger = customer_client(drain, email="s@example.com")
    assert stranger.get(f"/api/v1/invoices/{invoice['id']}/").status_code == 404

    [payment] = mine.get("/api/v1/payments/", {"invoice": invoice["id"]}).json()["results"]
    assert payment["status"] == "succeeded" and payment["attempts"][0]["outcome"] == "succeeded"
    refund_url = f"/api/v1/payments/{payment['id']}/refund/"
    body = {"amount": {"amount": "10.00", "currency": "USD"}, "reason": "goodwill"}
    assert mine.post(refund_url, body, format="json").status_code == 403
    first = staff.post(refund_url, body, format="json")
    assert first.status_code == 201 and first.json()["amount_refunded"] == {"amount": "10.00", "currency": "USD"}
    too_much = staff.post(refund_url, {"amount": {"amount": "20.01", "currency": "USD"}, "reason": "x"}, format="json")
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "refund_exceeds_payment"
    # a repeated POST with the same Idempotency-Key refunds once
    headers = {"HTTP_IDEMPOTENCY_KEY": "refund-2"}
    again = [staff.post(refund_url, body, format="json", **headers) for _ in range(2)]
    assert [r.status_code for r in again] == [201, 201]
    assert Payment.objects.get(pk=payment["id"]).amount_refunded.amount == 20
    # paying or voiding a paid invoice is refused
    assert mine.post(f"/api/v1/invoices/{invoice['id']}/pay/").json()["error"]["code"] == "invalid_transition"
    assert staff.post(f"/api/v1/invoices/{invoice['id']}/void/", {"reason": "x"}, format="json").status_code == 409


def test_pay_now_retries_a_declined_invoice_and_void_is_staff_only(drain, staff):
    pro = plan(price="30.00 USD")
    c, mine = customer_client(drain)
    mine.put(f"/api/v1/customers/{c.id}/payment-method/", {"token": "pm_card_insufficientFunds"}, format="json")
    drain()
    subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    invoice = Invoice.objects.get(customer_id=c.id)
    assert invoice.status == "finalized"
    paid = mine.post(f"/api/v1/invoices/{invoice.id}/pay/")
    assert paid.status_code == 200 and paid.json()["status"] == "finalized"  # still declined
    assert Payment.objects.get(invoice_id=invoice.id).attempts == 2
    assert mine.post(f"/api/v1/invoices/{invoice.id}/void/", {"reason": "x"}, format="json").status_code == 403
    missing_reason = staff.post(f"/api/v1/invoices/{invoice.id}/void/", {}, format="json")
    assert missing_reason.status_code == 400
    voided = staff.post(f"/api/v1/invoices/{invoice.id}/void/", {"reason": "Goodwill"}, format="json")
    assert voided.status_code == 200 and voided.json()["status"] == "voided"


def test_proration_preview_and_upcoming_invoice(drain, staff):
    basic = plan(code="basic", price="10.00 USD", tier="basic")
    pro = plan(code="pro", price="30.00 USD")
    c = customer(drain, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(basic.id), clock=FixedClock(at("2030-04-01 00:00")))
    drain()
    url = f"/api/v1/subscriptions/{sub.id}/proration-preview/"
    assert staff.get(url).status_code == 400  # plan missing
    assert staff.get(url, {"plan": str(basic.id)}).json()["error"]["code"] == "same_plan"
    # the period runs in 2030, so the preview is asked for a moment inside it
    preview = queries.preview_plan_change(subscription_id=str(sub.id), plan_id=str(pro.id), at=at("2030-04-16 00:00"))
    assert [str(line.amount.amount) for line in preview.lines] == ["-5.00", "15.00"]
    assert str(preview.net.amount) == "10.00"
    upcoming = staff.get(f"/api/v1/subscriptions/{sub.id}/upcoming-invoice/").json()
    assert upcoming["lines"][0]["kind"] == "plan" and upcoming["amount_due"] == {"amount": "10.00", "currency": "USD"}
    assert upcoming["period_start"] == "2030-05-01T00:00:00Z"


def test_coupon_applies_to_the_next_renewal(drain, staff):
    basic = plan(code="basic", price="10.00 USD", tier="basic")
    Coupon.objects.create(code="HALF", name="Half off", percent_off=50, duration="repeating", duration_in_periods=2)
    c = customer(drain, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(basic.id))
    drain()
    url = f"/api/v1/subscriptions/{sub.id}/coupon/"
    assert staff.post(url, {"code": "NOPE"}, format="json").json()["error"]["code"] == "coupon_not_applicable"
    response = staff.post(url, {"code": "half"}, format="json")
    assert response.status_code == 201 and response.json()["coupon"] == "HALF"
    assert staff.post(url, {"code": "HALF"}, format="json").status_code == 409
    upcoming = staff.get(f"/api/v1/subscriptions/{sub.id}/upcoming-invoice/").json()
    assert [line["kind"] for line in upcoming["lines"]] == ["plan", "discount", "tax"]
    assert upcoming["amount_due"] == {"amount": "5.00", "currency": "USD"}


def test_proration_preview_answers_what_the_change_plan_command_would(drain, staff):
    """The preview applies ChangePlan's policy first: a trial downgrade and the same plan are the
    command's 409s, an approval-only plan previews nothing charged now, an unknown plan is a 400."""
    # given a trial on Team, a cheaper Basic and an approval-only Enterprise
    basic = plan(code="basic", price="10.00 USD", tier="basic")
    team = plan(code="team", price="30.00 USD", tier="professional", trial_days=14)
    enterprise = plan(code="ent", price="500.00 USD", tier="enterprise")
    c = customer(drain, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(team.id), trial=True)
    drain()
    url = f"/api/v1/subscriptions/{sub.id}/proration-preview/"
    # when previewing a downgrade during the trial, then the command's 409 code comes back
    down = staff.get(url, {"plan": str(basic.id)})
    assert down.status_code == 409 and down.json()["error"]["code"] == "downgrade_during_trial"
    # and the command agrees with the preview: the downgrade it refused is refused by change-plan too
    change = staff.post(f"/api/v1/subscriptions/{sub.id}/change-plan/", {"plan": str(basic.id)}, format="json")
    assert change.status_code == 409 and change.json()["error"]["code"] == "downgrade_during_trial"
    # when previewing the same plan, then same_plan, as the command says
    same = staff.get(url, {"plan": str(team.id)})
    assert same.status_code == 409 and same.json()["error"]["code"] == "same_plan"
    # when previewing Enterprise, then the body says it waits for approval and charges nothing now
    ent = staff.get(url, {"plan": str(enterprise.id)})
    body = ent.json()
    assert ent.status_code == 200 and body["needs_approval"] is True and "approval" in body["message"]
    assert body["lines"] == [] and body["net"] == {"amount": "0.00", "currency": "USD"}
    # when previewing a plan that does not exist, then a 400 naming the plan
    missing = staff.get(url, {"plan": "00000000-0000-0000-0000-000000000000"})
    assert missing.status_code == 400 and "plan" in missing.json()["error"]["details"]

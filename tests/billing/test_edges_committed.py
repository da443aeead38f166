"""Every Billing edge that records an event, committed for real (no wrapping test transaction):
the API, the customer pages, the admin's actions and the beat jobs.

Each test asserts what its user sees (status, body, page) and what was stored (events, rows).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import commands as billing
from billing.models import BillingAccount, Coupon, Invoice, Payment
from billing.ports import reset_adapters
from sharedkernel.models import StoredEvent
from sharedkernel.scheduling import run_job
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan

pytestmark = pytest.mark.django_db(transaction=True)

USD = {"currency": "USD"}


def count(event_type: str, **payload) -> int:
    query = StoredEvent.objects.filter(event_type=event_type)
    return sum(1 for e in query if all(e.payload.get(k) == v for k, v in payload.items()))


def subscribed(drain, *, card="pm_card_visa", email="ada@example.com", price="30.00 USD", code="pro", **kw):
    pro = plan(code=code, price=price, **kw)
    c = customer(drain, card=card, email=email, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    return c, sub, Invoice.objects.get(subscription_id=sub.id)


# -- API -----------------------------------------------------------------------------------


def test_api_pay_payment_method_refund_credit_coupon_and_void(staff, drain):
    c, sub, invoice = subscribed(drain, card="pm_card_chargeDeclined")
    assert invoice.status == "finalized"

    # pay now: declined again, and the attempt is recorded
    paid = staff.post(f"/api/v1/invoices/{invoice.id}/pay/")
    assert paid.status_code == 200 and paid.json()["status"] == "finalized"
    assert count("billing.PaymentFailed", invoice_id=str(invoice.id)) == 2

    # a new card: the failed payment is retried with it and the invoice is paid
    put = staff.put(f"/api/v1/customers/{c.id}/payment-method/", {"token": "pm_card_visa"}, format="json")
    assert put.status_code == 200 and put.json()["last4"] == "4242"
    drain()
    assert staff.get(f"/api/v1/invoices/{invoice.id}/").json()["status"] == "paid"
    assert count("billing.PaymentMethodUpdated") >= 1 and count("billing.PaymentSucceeded") == 1

    # refund part of it
    payment = Payment.objects.get(invoice_id=invoice.id)
    refund = staff.post(
        f"/api/v1/payments/{payment.id}/refund/",
        {"amount": {"amount": "10.00", **USD}, "reason": "outage"},
        format="json",
    )
    assert refund.status_code == 201 and refund.json()["amount_refunded"] == {"amount": "10.00", **USD}
    assert count("billing.RefundIssued") == 1

    # grant credit, then a coupon
    credit = staff.post(
        f"/api/v1/customers/{c.id}/credits/", {"amount": {"amount": "5.00", **USD}, "reason": "sorry"}, format="json"
    )
    assert credit.status_code == 201 and credit.json()["credit"] == {"amount": "5.00", **USD}
    Coupon.objects.create(code="HALF", name="Half off", percent_off=50, duration="once")
    coupon = staff.post(f"/api/v1/subscriptions/{sub.id}/coupon/", {"code": "half"}, format="json")
    assert coupon.status_code == 201 and coupon.json()["coupon"] == "HALF"
    assert count("billing.CouponRedeemed") == 1

    # void: another customer's unpaid invoice
    _, _, unpaid = subscribed(drain, card="pm_card_chargeDeclined", email="bob@example.com", code="basic")
    voided = staff.post(f"/api/v1/invoices/{unpaid.id}/void/", {"reason": "goodwill"}, format="json")
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    assert count("billing.InvoiceVoided", invoice_id=str(unpaid.id)) == 1
    drain()


# -- customer pages ---------------------------------------------------------------------------


@pytest.fixture
def customer_client(client, drain, django_user_model):
    user = django_user_model.objects.create_user(username="ada", email="ada@example.com", password="pw-Ada-12345")
    c, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB", user=user)
    drain()
    billing.update_payment_method(customer_id=str(c.id), token="pm_card_chargeDeclined")
    drain()
    client.force_login(user)
    client.customer = c
    return client


def test_customer_pages_pay_set_the_card_and_apply_a_coupon(customer_client, drain):
    pro = plan(price="30.00 USD")
    sub = subs.subscribe(customer_id=str(customer_client.customer.id), plan_id=str(pro.id))
    drain()
    invoice = Invoice.objects.get(subscription_id=sub.id)

    page = customer_client.post(f"/billing/invoices/{invoice.id}/pay/", follow=True).content.decode()
    assert "The payment did not go through" in page
    assert count("billing.PaymentFailed", invoice_id=str(invoice.id)) == 2

    page = customer_client.post("/billing/payment-method/", {"token": "pm_card_visa"}, follow=True).content.decode()
    assert "Your payment method is saved" in page
    drain()
    invoice.refresh_from_db()
    assert invoice.status == "paid"

    Coupon.objects.create(code="TEN", name="Ten off", percent_off=10, duration="forever")
    page = customer_client.post(f"/billing/subscriptions/{sub.id}/coupon/", {"code": "TEN"}, follow=True)
    assert "Coupon TEN applied" in page.content.decode()
    assert count("billing.CouponRedeemed") == 1


# -- admin -------------------------------------------------------------------------------------


def test_admin_invoice_payment_dunning_and_account_actions(admin, drain):
    c, _, invoice = subscribed(drain, card="pm_card_chargeDeclined")
    payment = Payment.objects.get(invoice_id=invoice.id)

    def act(url, action, pk, **extra):
        page = admin.post(url, {"action": action, "_selected_action": [pk], **extra}, follow=True)
        assert page.status_code == 200
        drain()
        return page.content.decode()

    assert "Retry payment: 1 done" in act("/admin/billing/invoice/", "retry_payment", invoice.pk)
    assert "Retry: 1 done" in act("/admin/billing/payment/", "retry_now", payment.pk)
    assert "Retry: 1 done" in act("/admin/billing/dunningqueue/", "retry_now", payment.pk)
    assert count("billing.PaymentFailed", invoice_id=str(invoice.id)) == 4

    page = act(
        "/admin/billing/billingaccount/", "grant_credit", c.id, apply="1", amount="7.50", currency="", reason="Sorry"
    )
    assert "Grant credit: 1 done" in page
    assert BillingAccount.objects.get(pk=c.id).credit("USD").amount == 7.5
    # the account's change form edits the billing address only
    response = admin.post(f"/admin/billing/billingaccount/{c.id}/change/", {"address": "1 Main St"})
    assert response.status_code == 302
    assert BillingAccount.objects.get(pk=c.id).address == "1 Main St"

    assert "Void: 1 done" in act("/admin/billing/invoice/", "void", invoice.pk, apply="1", reason="goodwill")
    assert Invoice.objects.get(pk=invoice.pk).status == "voided"
    assert count("billing.InvoiceVoided", invoice_id=str(invoice.id)) == 1

    _, _, paid = subscribed(drain, email="bob@example.com", code="basic")
    page = act("/admin/billing/invoice/", "refund", paid.pk, apply="1", amount="3.00", reason="outage")
    assert "Refund: 1 done" in page
    assert count("billing.RefundIssued") == 1


# -- beat jobs, on real time ------------------------------------------------------------------------


def test_beat_jobs_retry_payments_escalate_dunning_and_retry_tax(drain, settings):
    _, _, invoice = subscribed(drain, card="pm_card_chargeDeclined")
    payment = Payment.objects.get(invoice_id=invoice.id)
    # the retries of the schedule (+1 h, +24 h, +72 h), each when due
    while payment.next_retry_at is not None:
        assert run_job("billing.retry_payments", now=payment.next_retry_at) == 1
        drain()
        payment.refresh_from_db()
    assert count("billing.DunningStarted") == 1
    # then the dunning steps, until exhausted
    while payment.next_dunning_at is not None:
        assert run_job("billing.escalate_dunning", now=payment.next_dunning_at) == 1
        drain()
        payment.refresh_from_db()
    assert count("billing.DunningEscalated") >= 1 and count("billing.DunningExhausted") == 1

    # a tax outage leaves the next invoice a draft until retry_tax gets an answer
    settings.BILLING_TAX_CALCULATOR, settings.TAX_API_URL, settings.TAX_API_RETRIES = "http", "http://127.0.0.1:9", 0
    reset_adapters()
    try:
        _, _, draft = subscribed(drain, email="bob@example.com", code="basic")
        assert draft.status == "draft" and draft.tax_retry_at is not None
        settings.BILLING_TAX_CALCULATOR = "table"
        reset_adapters()
        assert run_job("billing.retry_tax", now=max(draft.tax_retry_at, timezone.now()) + timedelta(seconds=1)) == 1
        drain()
    finally:
        reset_adapters()
    draft.refresh_from_db()
    assert draft.status == "paid"
    assert count("billing.TaxCalculated", invoice_id=str(draft.id)) == 1

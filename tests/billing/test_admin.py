"""Staff admin of Billing: read-only money, actions that run commands, editable configuration."""

from __future__ import annotations

import pytest

from billing.models import BillingAccount, Invoice, Payment
from subscriptions import commands as subs
from tests.billing.helpers import customer, plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def paid_invoice(drain):
    pro = plan(price="30.00 USD")
    c = customer(drain, country="GB", region="")
    sub = subs.subscribe(customer_id=str(c.id), plan_id=str(pro.id))
    drain()
    return Invoice.objects.get(subscription_id=sub.id)


def test_every_billing_admin_page_renders(admin_client, paid_invoice):
    for name in [
        "invoice",
        "payment",
        "dunningqueue",
        "billingaccount",
        "creditentry",
        "taxrate",
        "dunningschedule",
        "coupon",
    ]:
        response = admin_client.get(f"/admin/billing/{name}/")
        assert response.status_code == 200, name
    page = admin_client.get(f"/admin/billing/invoice/{paid_invoice.pk}/change/").content.decode()
    assert paid_invoice.number in page and "PDF" in page
    assert 'name="_save"' not in page  # nothing on an invoice can be saved


def test_refund_and_credit_actions_run_commands_with_their_rules(admin_client, paid_invoice):
    url = "/admin/billing/invoice/"
    form = {"action": "refund", "_selected_action": [paid_invoice.pk], "apply": "1", "reason": "goodwill"}
    admin_client.post(url, {**form, "amount": "31.00"})
    assert Payment.objects.get(invoice_id=paid_invoice.pk).amount_refunded.amount == 0  # refused: more than paid
    response = admin_client.post(url, {**form, "amount": "12.50"}, follow=True)
    assert "Refund: 1 done" in response.content.decode()
    assert str(Payment.objects.get(invoice_id=paid_invoice.pk).amount_refunded.amount) == "12.50"

    account = BillingAccount.objects.get(pk=paid_invoice.customer_id)
    admin_client.post(
        "/admin/billing/billingaccount/",
        {"action": "grant_credit", "_selected_action": [account.pk], "apply": "1", "amount": "5.00", "reason": "Sorry"},
    )
    account.refresh_from_db()
    assert str(account.credit("USD").amount) == "5.00"


def test_void_action_refuses_a_paid_invoice(admin_client, paid_invoice):
    response = admin_client.post(
        "/admin/billing/invoice/",
        {"action": "void", "_selected_action": [paid_invoice.pk], "apply": "1", "reason": "oops"},
        follow=True,
    )
    assert "Void refused" in response.content.decode()
    assert Invoice.objects.get(pk=paid_invoice.pk).status == "paid"

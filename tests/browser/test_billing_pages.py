"""A customer changes plan after seeing the proration preview, then finds the invoice — in a real
browser, with the real worker handling the events."""

from __future__ import annotations

import pytest

from billing.models import Invoice
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Subscription
from tests.browser.conftest import customer_with_login, log_in, shot
from tests.conftest import wait_until_handled

pytestmark = [pytest.mark.browser, pytest.mark.flow]


def test_change_plan_with_preview_then_see_the_invoice(flow, page, live_server):
    basic = subs.define_plan(
        code="basic-m", name="Basic", tier="basic", interval="month", trial_days=0, prices=[Money("10.00", "USD")]
    )
    subs.define_plan(
        code="pro-m", name="Pro", tier="professional", interval="month", trial_days=0, prices=[Money("30.00", "USD")]
    )
    user, customer = customer_with_login("grace", "Grace Hopper", "grace@example.com")
    sub = subs.subscribe(customer_id=str(customer.id), plan_id=str(basic.id))
    wait_until_handled()
    assert Subscription.objects.get(pk=sub.id).status == "active"
    log_in(page, live_server, user)

    # the dashboard offers a plan change; the page lists the plans in the customer's currency
    page.goto("/app/")
    page.click("text=Change plan")
    assert "You are on Basic" in page.inner_text("main")
    page.click("[data-plan=pro-m] >> text=Preview the change")
    preview = page.locator(".proration-preview")
    text = preview.inner_text()
    assert "Unused time on Basic" in text and "Remaining time on Pro" in text
    net = page.inner_text(".proration-preview .net")
    shot(page, "billing-01-change-plan-preview")
    assert net.endswith("USD") and not net.startswith("-")

    # confirming changes the plan; the prorated invoice is charged and shows up with the previewed amount
    page.click("button.confirm-change")
    assert "You are now on Pro" in page.inner_text(".messages")
    wait_until_handled()
    page.goto("/billing/invoices/")
    rows = page.locator("table.invoices tbody tr")
    assert rows.count() == 2
    shot(page, "billing-02-invoices")
    upgrade = Invoice.objects.get(subscription_id=sub.id, billing_reason="subscription_update")
    assert upgrade.status == "paid"
    # the preview was computed a moment before the change: same to within a cent of time passing
    assert (
        abs(upgrade.amount_due.amount - Money(net.split()[0].replace(",", ""), "USD").amount)
        <= Money("0.01", "USD").amount
    )
    page.click(f"[data-invoice='{upgrade.id}'] a >> nth=0")
    assert page.locator(".invoice").get_attribute("data-status") == "paid"
    assert page.locator("tr.line.proration").count() == 2
    shot(page, "billing-03-invoice")
    pdf = page.request.get(f"/billing/invoices/{upgrade.id}/pdf/")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")

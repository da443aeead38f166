"""What a first-time customer and staff member see (issue 13), in a real browser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from billing import commands as billing
from sharedkernel.bus import drain
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Plan, Subscription
from tests.billing.helpers import plan
from tests.browser.conftest import customer_with_login, log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _enterprise():
    return plan("ent-y", "4600.00 EUR", interval="year", tier="enterprise", name="Enterprise")


def _plans():
    basic = plan("basic-m", "10.00 EUR", tier="basic", trial_days=14, name="Basic")
    pro = plan("pro-m", "30.00 EUR", trial_days=14, name="Pro")
    return basic, pro, _enterprise()


def _customer(email: str, *, country: str = "FR"):
    return customer_with_login(email, "Marie Curie", email, currency="EUR", country=country, handled=drain)


def test_the_plan_change_preview_says_what_the_policy_will_do(page, live_server):
    # given a customer trialing Pro
    basic, pro, enterprise = _plans()
    user, customer = _customer("marie@example.com")
    sub = subs.subscribe(customer_id=str(customer.id), plan_id=str(pro.id), trial=True)
    drain()
    log_in(page, live_server, user)

    # when they preview a downgrade to Basic during the trial
    page.goto(f"/billing/subscriptions/{sub.id}/change-plan/?plan={basic.id}")
    shot(page, "first-look-preview-refused")
    # then the page says it is refused, and why, with nothing to confirm
    assert "cannot downgrade during a trial" in page.inner_text(".refusal")
    assert page.locator("button.confirm-change").count() == 0

    # when they preview Enterprise, which needs staff approval
    page.goto(f"/billing/subscriptions/{sub.id}/change-plan/?plan={enterprise.id}")
    shot(page, "first-look-preview-approval")
    box = page.inner_text(".proration-preview")
    # then it says it waits for approval and charges nothing now
    assert "needs our team's approval" in box and "Charged now" not in box
    page.click("button.confirm-change")
    assert "waiting for our team's approval" in page.inner_text(".messages")
    assert Subscription.objects.get(pk=sub.id).plan_id == pro.id


@pytest.fixture
def paying_customer():
    """A French customer on Pro with 20 % TVA, a paid first invoice and usage over the included 100,000."""
    from billing.models import TaxRate
    from subscriptions.commands import record_usage

    TaxRate.objects.create(country="FR", region="", rate="0.20", name="TVA")
    pro = plan(
        "pro-m",
        "45.00 EUR",
        name="Pro",
        included_usage={"api_calls": 100_000},
        overage_rates={"api_calls": [Money("0.01", "EUR")]},
    )
    _enterprise()
    user, customer = _customer("pierre@example.com", country="FR")
    sub = subs.subscribe(customer_id=str(customer.id), plan_id=str(pro.id))
    drain()
    from django.utils import timezone

    record_usage(
        [
            {
                "subscription": str(sub.id),
                "metric": "api_calls",
                "quantity": 123_456,
                "timestamp": timezone.now().isoformat(),
                "idempotency_key": "k1",
            }
        ]
    )
    drain()
    return user, customer, sub


def test_pages_show_one_number_format_aligned_plan_lines_and_tax_rates(page, live_server, paying_customer):
    from billing.models import Invoice

    user, customer, sub = paying_customer
    log_in(page, live_server, user)

    # the plans page and the other pages write money the same way
    page.goto("/app/plans/?currency=EUR")
    assert "4,600.00 EUR" in page.inner_text("[data-plan=ent-y]")
    assert "100,000 api_calls" in page.inner_text("[data-plan=pro-m]")

    # the usage page groups its counts
    page.goto(f"/app/subscriptions/{sub.id}/usage/")
    row = page.inner_text("tr[data-metric=api_calls]")
    assert "123,456" in row and "100,000" in row and "23,456" in row

    # the next-invoice box names the tax with its rate
    page.goto("/billing/invoices/")
    assert "TVA (20 %)" in page.inner_text("main")

    # an invoice's plan line has its amount beside the description, not under it
    invoice = Invoice.objects.get(customer_id=customer.id, status="paid")
    page.goto(f"/billing/invoices/{invoice.id}/")
    shot(page, "first-look-invoice")
    description = page.locator("tr.line.plan td").first.bounding_box()
    amount = page.locator("tr.line.plan td.num").bounding_box()
    assert abs(description["y"] - amount["y"]) < 4 and amount["x"] > description["x"] + description["width"] - 1


def test_staff_pages_load_nothing_from_elsewhere_and_have_a_staff_navigation(page, live_server, paying_customer):
    # given a customer whose card is declined (at risk of churning)
    late, _ = subs.register_customer(name="Late Payer AG", email="late@example.com", currency="EUR", country="FR")
    drain()
    billing.update_payment_method(customer_id=str(late.id), token="pm_card_chargeDeclined")
    subs.subscribe(customer_id=str(late.id), plan_id=str(Plan.objects.get(code="pro-m").id))
    drain()
    staff = get_user_model().objects.create_superuser("boss", "boss@example.com", "Correct-Horse-42")
    log_in(page, live_server, staff)
    foreign, missing = [], []
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(live_server.url) else None)
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)

    # the dashboard's charts bring no third-party script, and every page has an icon
    page.goto("/staff/analytics/?currency=EUR")
    page.wait_for_load_state("networkidle")
    assert page.locator(".chart svg").count() >= 1
    assert page.request.get("/favicon.ico").ok
    # the at-risk table names the customer
    assert "Late Payer AG" in page.inner_text("table.at-risk")

    # staff navigation: dashboards and the admin, none of the customer-only pages
    links = page.locator("header.topbar nav a")
    names = [t.strip() for t in links.all_inner_texts()]
    assert "Notifications" not in names and "Webhooks" not in names and "My subscriptions" not in names
    assert {"Dashboards", "Customers", "Invoices", "Staff admin"} <= set(names)
    for href in [links.nth(i).get_attribute("href") for i in range(links.count())]:
        page.goto(href)
    page.goto("/admin/")
    page.wait_for_load_state("networkidle")
    assert foreign == []
    assert missing == []


def test_every_admin_list_fits_a_1280_px_window(page, live_server, paying_customer, settings):
    """No admin changelist needs a horizontal scroll at 1280 px beside its filter: long e-mails,
    URLs and ids wrap, amounts stay on one line (the lists were 140–200 px too wide)."""
    from django.contrib import admin
    from django.urls import reverse

    from notifications import commands as notifications

    late, _ = subs.register_customer(
        name="Late Payer Aktiengesellschaft für Beispiele",
        email="accounts-payable.department@a-rather-long-company-name.example",
        currency="EUR",
        country="FR",
    )
    drain()
    billing.update_payment_method(customer_id=str(late.id), token="pm_card_chargeDeclined")
    subs.subscribe(customer_id=str(late.id), plan_id=str(Plan.objects.get(code="pro-m").id))
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    notifications.register_endpoint(
        url="http://127.0.0.1:9/a/rather/long/path/for/the/webhooks/of/this/customer",
        events=["billing.InvoiceFinalized", "billing.PaymentSucceeded", "subscriptions.PlanChanged"],
        customer_id=str(late.id),
    )
    drain()
    staff = get_user_model().objects.create_superuser("boss", "boss@example.com", "Correct-Horse-42")
    log_in(page, live_server, staff)
    page.set_viewport_size({"width": 1280, "height": 900})
    too_wide = {}
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        page.goto(url)
        width = page.evaluate(
            "Math.max(document.documentElement.scrollWidth, ...[...document.querySelectorAll('.results')]"
            ".map(e => document.documentElement.clientWidth + e.scrollWidth - e.clientWidth))"
        )
        if width > 1280:
            too_wide[url] = width
            shot(page, "admin-too-wide" + url.replace("/", "-"))
    assert too_wide == {}

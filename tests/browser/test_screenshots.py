"""Every customer and staff page on demo data, at a desktop's 1280 px and a phone's 390 px width:
a PNG of each in test-artifacts/screenshots/ (to look at), and the page must fit its width."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import Invoice
from config.demo import seed
from subscriptions.models import Plan, Subscription
from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": 1280, "phone": 390}
OUT = ARTIFACTS / "screenshots"

STAFF_PAGES = [
    ("staff-dashboard", "/staff/analytics/?currency=EUR"),
    ("admin-index", "/admin/"),
    ("admin-customers", "/admin/subscriptions/customer/"),
    ("admin-subscriptions", "/admin/subscriptions/subscription/"),
    ("admin-plans", "/admin/subscriptions/plan/"),
    ("admin-invoices", "/admin/billing/invoice/"),
    ("admin-payments", "/admin/billing/payment/"),
    ("admin-dunning", "/admin/billing/dunningqueue/"),
    ("admin-notifications", "/admin/notifications/notification/"),
    ("admin-webhook-deliveries", "/admin/notifications/webhookdelivery/"),
]


def _customer_pages(email: str) -> list[tuple[str, str]]:
    sub = Subscription.objects.filter(customer__email=email).order_by("-created_at").first()
    invoice = (
        Invoice.objects.filter(customer_id=sub.customer_id).exclude(status="draft").order_by("-created_at").first()
    )
    other = Plan.objects.exclude(pk=sub.plan_id).filter(code="team-monthly").first()
    pages = [
        ("dashboard", "/app/"),
        ("plans", "/app/plans/"),
        ("usage", f"/app/subscriptions/{sub.id}/usage/"),
        ("cancel", f"/app/subscriptions/{sub.id}/cancel/"),
        ("change-plan", f"/billing/subscriptions/{sub.id}/change-plan/"),
        ("invoices", "/billing/invoices/"),
        ("payment-method", "/billing/payment-method/"),
        ("notifications", "/notifications/preferences/"),
        ("webhooks", "/notifications/webhooks/"),
    ]
    if other:
        pages.append(("change-plan-preview", f"/billing/subscriptions/{sub.id}/change-plan/?plan={other.id}"))
    if invoice:
        pages.append(("invoice", f"/billing/invoices/{invoice.id}/"))
    return pages


def _visit(browser, live_server, user, pages, prefix) -> list[str]:
    problems = []
    cookie = None
    if user is not None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies["sessionid"].value
    for label, width in WIDTHS.items():
        context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 900})
        if cookie:
            context.add_cookies([{"name": "sessionid", "value": cookie, "url": live_server.url}])
        page = context.new_page()
        for name, path in pages:
            response = page.goto(path)
            if response.status >= 400:
                problems.append(f"{prefix}-{name} answered {response.status}")
            page.screenshot(path=str(OUT / f"{prefix}-{name}-{label}.png"), full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 1:
                problems.append(f"{prefix}-{name} at {width} px is {overflow} px wider than the window")
            clipped = page.evaluate(
                "(() => { const t = document.querySelector('#result_list');"
                " return t ? t.scrollWidth - t.parentElement.clientWidth : 0; })()"
            )
            if label == "desktop" and clipped > 1 and name in ("admin-subscriptions", "admin-invoices"):
                problems.append(f"{prefix}-{name}: the admin list is {clipped} px wider than its box at {width} px")
        context.close()
    return problems


def test_every_page_at_desktop_and_phone_width(browser, live_server):
    OUT.mkdir(parents=True, exist_ok=True)
    seed(months=5, customers=12, log=lambda *_: None)
    users = get_user_model().objects
    problems = _visit(
        browser,
        live_server,
        None,
        [("plans", "/app/plans/"), ("login", "/accounts/login/"), ("signup", "/accounts/signup/")],
        "visitor",
    )
    for email in ("demo@example.com", "trial@example.com", "dunning@example.com"):
        problems += _visit(browser, live_server, users.get(email=email), _customer_pages(email), email.split("@")[0])
    problems += _visit(browser, live_server, users.get(username="admin"), STAFF_PAGES, "staff")
    (OUT / "problems.txt").write_text("\n".join(problems) + "\n")
    assert problems == []

"""A customer signs up, verifies their e-mail, subscribes and cancels — in a real browser."""

from __future__ import annotations

import pytest
from django.core import mail

from subscriptions.models import Customer, Subscription
from tests.billing.helpers import plan
from tests.browser.conftest import link_in_last_mail, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def catalogue():
    plan("starter-m", "19.00 USD", tier="basic", name="Starter", features=["1 project"])
    plan(
        "pro-m",
        "49.00 USD, 45.00 EUR",
        trial_days=14,
        name="Pro",
        features=["Unlimited projects"],
        included_usage={"api_calls": 10000},
    )


def sign_up(page, email="grace@example.com", password="Correct-Horse-42"):
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", password)
    page.fill("input[name=password2]", password)
    page.fill("input[name=name]", "Grace Hopper")
    page.select_option("select[name=currency]", "USD")
    page.fill("input[name=country]", "us")
    page.fill("input[name=region]", "ny")
    page.click("button[type=submit]")


def test_sign_up_verify_subscribe_and_cancel(page, catalogue, live_server):
    # given a visitor on the plan catalogue
    page.goto("/app/plans/")
    assert page.locator("[data-plan=pro-m]").inner_text().count("49.00 USD") == 1
    shot(page, "01-plans")

    # when they sign up, they are asked to verify their address before anything else
    sign_up(page)
    assert "verify" in page.content().lower()
    assert not Customer.objects.exists()
    shot(page, "02-verification-sent")

    # and following the e-mailed link confirms it, logs them in and makes them a customer
    page.goto(link_in_last_mail(r"http://[^\s]+/accounts/confirm-email/[^\s]+"))
    page.click("button[type=submit]")
    page.wait_for_url("**/app/")
    customer = Customer.objects.get(email="grace@example.com")
    assert (customer.name, customer.country, customer.region, customer.currency) == ("Grace Hopper", "US", "NY", "USD")
    assert "no subscriptions yet" in page.inner_text("main")

    # then they start the free trial of Pro
    page.goto("/app/plans/")
    page.click("[data-plan=pro-m] >> text=Start free trial")
    page.click("#confirm-subscribe")
    page.wait_for_url("**/app/")
    card = page.locator(".subscription").first
    assert card.locator("[data-status]").inner_text() == "Trialing"
    assert "14 days left" in card.inner_text()
    shot(page, "03-dashboard-trialing")

    # and cancel it right away
    card.locator("text=Cancel").click()
    page.check("input[value=now]")
    page.fill("input[name=reason]", "Just looking")
    shot(page, "04-cancel")
    page.click("#confirm-cancel")
    page.wait_for_url("**/app/")
    assert page.locator(".subscription [data-status]").first.inner_text() == "Cancelled"
    assert "is cancelled" in page.inner_text(".messages")
    sub = Subscription.objects.get(customer=customer)
    assert sub.status == "cancelled" and sub.cancellation_reason == "Just looking"
    shot(page, "05-dashboard-cancelled")


def test_scheduled_cancellation_can_be_withdrawn_and_login_logout_and_password_reset_work(page, catalogue):
    sign_up(page, email="linus@example.com")
    page.goto(link_in_last_mail(r"http://[^\s]+/accounts/confirm-email/[^\s]+"))
    page.click("button[type=submit]")
    page.wait_for_url("**/app/")
    page.goto("/app/subscribe/pro-m/?trial=1")
    page.click("#confirm-subscribe")
    page.locator(".subscription >> text=Cancel").click()
    page.check("input[value=period_end]")
    page.click("#confirm-cancel")
    assert "cancellation scheduled" in page.inner_text(".subscription")
    page.click("text=Keep my subscription")
    assert "withdrawn" in page.inner_text(".messages")
    assert Subscription.objects.get(customer__email="linus@example.com").cancel_at_period_end is False

    page.click("text=Log out")
    page.goto("/app/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=login]", "linus@example.com")
    page.fill("input[name=password]", "Correct-Horse-42")
    page.click("button[type=submit]")
    page.wait_for_url("**/app/")
    assert "Pro" in page.inner_text(".subscription")

    page.click("text=Log out")
    page.goto("/accounts/password/reset/")
    sent = len(mail.outbox)
    page.fill("input[name=email]", "linus@example.com")
    page.click("button[type=submit]")
    assert len(mail.outbox) == sent + 1 and "password" in mail.outbox[-1].subject.lower()
    page.goto(link_in_last_mail(r"http://[^\s]+/accounts/password/reset/key/[^\s]+"))
    page.fill("input[name=password1]", "Another-Horse-43")
    page.fill("input[name=password2]", "Another-Horse-43")
    page.click("button[type=submit]")
    assert "changed" in page.inner_text("main").lower()

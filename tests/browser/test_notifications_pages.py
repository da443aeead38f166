"""A customer sets e-mail preferences and registers a webhook endpoint, sees its deliveries and
redelivers one; staff read the notification log and preview a template — in a real browser, with the
real worker handling the events and a real receiver on loopback."""

from __future__ import annotations

import time

import pytest

from billing import commands as billing
from notifications.models import Notification, Recipient, WebhookDelivery
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.browser.conftest import customer_with_login, log_in, shot
from tests.conftest import wait_until_handled
from tests.helpers import staff_user
from tests.notifications.receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.flow]


def settle(timeout: float = 30) -> None:
    wait_until_handled()
    deadline = time.monotonic() + timeout
    while (
        Notification.objects.filter(status="queued").exists()
        or WebhookDelivery.objects.filter(status="pending").exists()
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_preferences_and_webhooks_pages(flow, page, live_server, smtp_sink):
    plan = subs.define_plan(
        code="pro-m", name="Pro", tier="professional", interval="month", trial_days=0, prices=[Money("30.00", "USD")]
    )
    user, customer = customer_with_login("ada", "Ada Lovelace", "ada.pages@example.com", card=None, handled=settle)
    log_in(page, live_server, user)

    # preferences: the log of what was sent, and the essential-only switch
    page.goto("/notifications/preferences/")
    assert "Welcome to SubscriptionHub, Ada Lovelace" in page.inner_text("table.log")
    page.check("input[name=essential_only]")
    page.click("text=Save preferences")
    assert "Your e-mail preferences are saved." in page.inner_text(".messages")
    assert page.is_checked("input[name=essential_only]")
    assert Recipient.objects.get(pk=customer.id).essential_only
    shot(page, "notifications-01-preferences")

    with Receiver() as receiver:
        # a URL that is not http(s) is refused with a clear message
        page.goto("/notifications/webhooks/")
        page.fill("input[name=url]", "ftp://example.com/hooks")
        page.click("text=Add endpoint")
        assert "http(s) URL" in page.inner_text(".messages")

        # registering shows the signing secret once
        page.fill("input[name=url]", receiver.url)
        page.select_option("select[name=events]", ["*"])
        page.click("text=Add endpoint")
        secret = page.inner_text(".secret code")
        assert secret.startswith("whsec_")
        receiver.secret = secret
        shot(page, "notifications-02-webhook-added")

        # events of the account arrive signed, and the page lists each delivery with the receiver's answer
        billing.update_payment_method(customer_id=str(customer.id), token="pm_card_visa")
        subs.subscribe(customer_id=str(customer.id), plan_id=str(plan.id))
        settle()
        assert receiver.received and all(r["verified"] for r in receiver.received)
        page.goto("/notifications/webhooks/")
        assert "whsec_" not in page.content()  # the secret was shown once
        table = page.inner_text(".endpoint table")
        assert "billing.PaymentSucceeded" in table and "HTTP 200" in table
        shot(page, "notifications-03-webhook-deliveries")

        # redeliver one from the page
        before = len(receiver.received)
        page.locator(".endpoint tr", has_text="billing.PaymentSucceeded").locator("text=Redeliver").click()
        assert "billing.PaymentSucceeded is being sent again." in page.inner_text(".messages")
        assert len(receiver.received) == before + 1 and receiver.received[-1]["verified"]

        # disable it: the page says so and offers to enable it again
        page.click(".endpoint >> text=Disable")
        assert "Nothing more is sent to" in page.inner_text(".messages")
        assert "disabled" in page.inner_text(".endpoint h2")
        shot(page, "notifications-04-webhook-disabled")
        page.click(".endpoint >> text=Enable again")
        assert "active" in page.inner_text(".endpoint h2")

    # staff: the notification log with its filters, and a template preview
    staff = staff_user("notif-staff")
    log_in(page, live_server, staff)
    page.set_viewport_size({"width": 1500, "height": 900})
    page.goto("/admin/notifications/notification/")
    assert "ada.pages@example.com" in page.inner_text("#result_list")
    assert "By status" in page.inner_text("#changelist-filter")
    shot(page, "notifications-05-admin-log")
    page.goto("/admin/notifications/notification/preview/dunning/")
    assert "Second notice" in page.inner_text("body")
    shot(page, "notifications-06-preview-dunning")
    page.goto("/admin/notifications/notification/preview/invoice/")
    shot(page, "notifications-07-preview-invoice")

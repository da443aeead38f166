"""What a first-time customer and staff member see (issue 13), in a real browser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing import commands as billing
from sharedkernel.bus import drain
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Subscription
from tests.browser.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def _plans():
    basic = subs.define_plan(
        code="basic-m", name="Basic", tier="basic", interval="month", trial_days=14, prices=[Money("10.00", "EUR")]
    )
    pro = subs.define_plan(
        code="pro-m", name="Pro", tier="professional", interval="month", trial_days=14, prices=[Money("30.00", "EUR")]
    )
    enterprise = subs.define_plan(
        code="ent-y",
        name="Enterprise",
        tier="enterprise",
        interval="year",
        trial_days=0,
        prices=[Money("4600.00", "EUR")],
    )
    return basic, pro, enterprise


def _customer(email: str, *, country: str = "FR"):
    user = get_user_model().objects.create_user(email, email, "Correct-Horse-42")
    customer, _ = subs.register_customer(name="Marie Curie", email=email, currency="EUR", country=country, user=user)
    drain()
    billing.update_payment_method(customer_id=str(customer.id), token="pm_card_visa")
    return user, customer


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

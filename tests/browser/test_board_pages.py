"""The event-storming board and a dunning subscription's timeline on demo data, in a real browser:
stickies in the seed's colours, SVG arrows, a sticky's details on click, and the retry controls of a
pink hot spot."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from config.demo import seed
from sharedkernel.models import DeliveryStatus, EventDelivery, StoredEvent
from tests.browser.conftest import shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(page, live_server) -> None:
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_the_board_and_a_dunning_timeline_on_demo_data(page, live_server):
    seed(months=6, customers=24, log=lambda *a: None)
    exhausted = StoredEvent.objects.filter(event_type="billing.DunningExhausted").first()
    assert exhausted is not None, "the demo has a subscription that went through dunning"
    subscription_id = exhausted.payload["subscription_id"]
    # a hot spot: the analytics projection of its DunningExhausted failed
    projection = EventDelivery.objects.get(event=exhausted, handler="analytics.project_subscriptions")
    EventDelivery.objects.filter(pk=projection.pk).update(status=DeliveryStatus.FAILED, last_error="projection crashed")
    _login(page, live_server)
    page.set_viewport_size({"width": 1280, "height": 900})

    # the board: one lane per context, stickies of every colour, SVG arrows, some dashed
    page.goto("/staff/board/")
    lanes = page.locator("section.lane h2").all_inner_texts()
    assert [t.lower() for t in lanes[:4]] == ["subscriptions", "billing", "notifications", "analytics"]
    for kind in ("event", "command", "aggregate", "policy", "readmodel", "external"):
        assert page.locator(f"details.sticky.{kind}").count() >= 1, kind
    assert page.locator("svg.arrows path.reacts").count() >= 10
    assert page.locator("svg.arrows path.reacts.dashed").count() >= 5
    assert page.locator("svg.arrows path.issues").count() >= 5
    assert page.locator("svg.arrows path.records").count() >= 40
    # the colours are the seed's
    colour = page.locator('[data-event="billing.PaymentFailed"]').evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(255, 184, 107)"
    hot = page.locator('[data-handler="analytics.project_subscriptions"]')
    assert "hot" in hot.get_attribute("class")
    assert hot.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 143, 199)"  # pink
    # the four contexts' lanes fit a 1280 px page (a test module's handlers may add a lane after them)
    fourth = page.locator('section.lane[data-context="analytics"]').bounding_box()
    assert fourth["x"] + fourth["width"] <= 1280
    shot(page, "board-01-wall")

    # clicking a sticky shows its payload, code and live figures, and (a hot spot) the retry
    page.locator('[data-event="billing.DunningExhausted"] > summary').click()
    details = page.locator('[data-event="billing.DunningExhausted"] .info')
    assert details.is_visible()
    assert "billing.events:" in details.inner_text()
    assert "payment_id" in details.inner_text()
    assert "analytics.project_subscriptions: 0 pending, 1 failed" in details.inner_text()
    # opening it lights its arrows up
    assert page.locator('svg.arrows path.lit[data-from="event-billing-DunningExhausted"]').count() >= 1
    shot(page, "board-02-sticky")
    details.get_by_role("button", name="Retry failed").first.click()
    page.wait_for_url("**/staff/board/")
    assert "1 failed delivery(ies) of analytics.project_subscriptions (billing.DunningExhausted) queued" in (
        page.locator(".messages").inner_text()
    )
    projection.refresh_from_db()
    assert projection.status == DeliveryStatus.RETRYING
    EventDelivery.objects.filter(pk=projection.pk).update(status=DeliveryStatus.FAILED, last_error="projection crashed")

    # the timeline of that subscription: a tree of causes, payloads, handlers, a retry button
    page.goto(f"/staff/timeline/?subscription={subscription_id}")
    exhausted_card = page.locator(f'[id="{exhausted.event_id}"]')
    assert exhausted_card.is_visible()
    suspended = page.locator(
        '[data-event="subscriptions.SubscriptionSuspended"], [data-event="subscriptions.SubscriptionCancelled"]'
    )
    caused = suspended.filter(has=page.locator(f'.cause a[href="#{exhausted.event_id}"]'))
    assert caused.count() == 1  # DunningExhausted → the suspension, drawn under it
    assert page.locator("ul.children").count() >= 3
    assert f'data-cause="{exhausted.event_id}"' in page.content()
    hot_row = page.locator(f'li.hot[data-delivery="{projection.pk}"]')
    assert hot_row.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 143, 199)"
    exhausted_card.locator("details.payload > summary").click()
    assert "subscription_id" in exhausted_card.locator("pre").inner_text()
    shot(page, "board-03-timeline")
    hot_row.get_by_role("button", name="Retry").click()
    page.wait_for_url("**/staff/timeline/**")
    assert "queued for retry" in page.locator(".messages").inner_text()
    projection.refresh_from_db()
    assert projection.status == DeliveryStatus.RETRYING and projection.attempts == 0

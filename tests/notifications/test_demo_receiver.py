"""The demo's webhook endpoint is the app's own /demo/webhook-receiver/: reachable only because its
exact origin is in WEBHOOK_ALLOWED_ORIGINS (every other local address stays refused), checking the
signature as a real receiver would, so a demo user sees deliveries that succeed."""

from __future__ import annotations

import pytest

from notifications import commands, webhooks
from notifications.models import WebhookDelivery
from sharedkernel.values import Money
from subscriptions import commands as subs

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_delivery_to_the_demo_receiver_succeeds_and_only_its_origin_is_allowed(live_server, settings, drain):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    settings.DEMO_WEBHOOK_RECEIVER = True
    url = f"{live_server.url}/demo/webhook-receiver/"
    # without the allow-list the address guard refuses the loopback receiver, as before
    with pytest.raises(webhooks.UnsafeUrl):
        webhooks.check_url(url)
    settings.WEBHOOK_ALLOWED_ORIGINS = [live_server.url]
    webhooks.check_url(url)
    # another port on the same machine stays refused, at registration and when connecting
    other = live_server.url.rsplit(":", 1)[0] + ":6379/demo/webhook-receiver/"  # Redis listens there
    with pytest.raises(webhooks.UnsafeUrl):
        webhooks.check_url(other)
    with pytest.raises(webhooks.UnsafeUrl, match="private or local"):
        webhooks.post(other, b"{}", {"Content-Type": "application/json"})

    plan = subs.define_plan(
        code="pro", name="Pro", tier="professional", interval="month", trial_days=0, prices=[Money("30.00", "USD")]
    )
    customer, _ = subs.register_customer(name="Demo", email="demo-hook@example.com", currency="USD", country="GB")
    drain()
    endpoint = commands.register_endpoint(
        url=url, events=["subscriptions.SubscriptionCreated"], customer_id=customer.id
    )
    subs.subscribe(customer_id=customer.id, plan_id=plan.id)
    drain()
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.status, delivery.last_status_code) == ("succeeded", 200)


def test_the_demo_receiver_checks_the_signature_and_is_off_unless_enabled(client, settings):
    settings.DEMO_WEBHOOK_RECEIVER = False
    assert client.post("/demo/webhook-receiver/", "{}", content_type="application/json").status_code == 404
    settings.DEMO_WEBHOOK_RECEIVER = True
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    commands.register_endpoint(url="http://testserver/demo/webhook-receiver/", events=["*"])
    forged = client.post(
        "/demo/webhook-receiver/",
        '{"event_type": "billing.PaymentSucceeded"}',
        content_type="application/json",
        headers={webhooks.SIGNATURE_HEADER: "t=1,v1=00"},
    )
    assert forged.status_code == 400 and forged.json()["received"] is False


def test_a_url_with_a_port_out_of_range_is_refused_clearly(settings):
    settings.WEBHOOK_ALLOWED_ORIGINS = ["http://127.0.0.1:99999", "http://127.0.0.1:8000"]
    with pytest.raises(webhooks.UnsafeUrl, match="port"):
        webhooks.check_url("http://example.com:99999/hooks")
    webhooks.check_url("http://127.0.0.1:8000/demo/webhook-receiver/")  # the valid entry still allows

"""Webhook delivery against real receivers on loopback: the address guard at connect time, no redirects,
timeouts, no proxies from the environment, the safety net for a first attempt that never happened, and
redelivery from the customer page and the admin, no POST inside a transaction, and a worker killed mid-POST."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from notifications import commands, webhooks
from notifications.models import WebhookDelivery, WebhookEndpoint
from sharedkernel.outside import CallInsideTransaction
from sharedkernel.scheduling import run_job
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.notifications.crash import Doomed
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db

SIGNED = {"Content-Type": "application/json"}


@pytest.fixture
def plan(db):
    return subs.define_plan(
        code="pro", name="Pro", tier="professional", interval="month", trial_days=0, prices=[Money("30.00", "USD")]
    )


def customer_with_endpoint(drain, receiver, *, email="hook@example.com", username=None):
    user = get_user_model().objects.create_user(username, email, "pw-Hook-123456") if username else None
    customer, _ = subs.register_customer(name="Hook", email=email, currency="USD", country="GB", user=user)
    drain()
    endpoint = commands.register_endpoint(
        url=receiver.url, events=["subscriptions.SubscriptionCreated"], customer_id=customer.id
    )
    receiver.secret = endpoint.secret
    return customer, endpoint, user


def test_an_address_that_turns_out_local_when_connecting_gets_nothing(settings):
    # given a receiver on loopback, reached by a name (as after DNS rebinding: the check at registration passed)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    with Receiver() as receiver:
        for url in (receiver.url, f"http://localhost:{receiver.port}/hooks"):
            # when the POST connects
            with pytest.raises(webhooks.UnsafeUrl, match="private or local address"):
                webhooks.post(url, b"{}", SIGNED)
        # then the guard closed the socket before a byte was sent
        assert receiver.received == []


def test_events_no_endpoint_wants_are_not_fanned_out_and_wanted_ones_are(drain, plan, settings):
    from sharedkernel.models import EventDelivery

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    fan_outs = EventDelivery.objects.filter(handler="notifications.fan_out_webhooks")
    # given no endpoint: a customer registers, and no fan-out work is queued for it
    customer, _ = subs.register_customer(name="Quiet", email="quiet@example.com", currency="USD", country="GB")
    assert not fan_outs.exists()
    drain()
    # when an endpoint subscribes to SubscriptionCreated only, and the customer subscribes
    with Receiver() as receiver:
        endpoint = commands.register_endpoint(
            url=receiver.url, events=["subscriptions.SubscriptionCreated"], customer_id=customer.id
        )
        subs.subscribe(customer_id=customer.id, plan_id=plan.id)
        # then only the wanted type gets a fan-out delivery, and it reaches the endpoint
        assert set(fan_outs.values_list("event__event_type", flat=True)) == {"subscriptions.SubscriptionCreated"}
        drain()
        assert list(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("event_type", flat=True)) == [
            "subscriptions.SubscriptionCreated"
        ]


def test_redirects_are_answers_not_new_destinations(drain, plan, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as elsewhere, Receiver(answers=[302], location="") as receiver:
        receiver.location = elsewhere.url
        customer, endpoint, _ = customer_with_endpoint(drain, receiver)
        with django_capture_on_commit_callbacks(execute=True):
            subs.subscribe(customer_id=customer.id, plan_id=plan.id)
            drain()
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
        assert (delivery.status, delivery.last_status_code, delivery.last_error) == ("retrying", 302, "HTTP 302")
        assert len(receiver.received) == 1 and elsewhere.received == []


def test_a_slow_receiver_times_out_and_waits_for_its_retry(drain, plan, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_READ_TIMEOUT = 0.3
    with Receiver(delay=1.5) as receiver:
        customer, endpoint, _ = customer_with_endpoint(drain, receiver)
        with django_capture_on_commit_callbacks(execute=True):
            subs.subscribe(customer_id=customer.id, plan_id=plan.id)
            drain()
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
        assert delivery.status == "retrying" and delivery.last_status_code is None
        assert "Timeout" in delivery.last_error and delivery.last_latency_ms < 1500
        assert delivery.attempt_rows.get().error == delivery.last_error


def test_proxies_from_the_environment_are_not_used(
    drain, plan, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as proxy, Receiver() as receiver:
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/hooks"))
        monkeypatch.setenv("NO_PROXY", "")
        customer, endpoint, _ = customer_with_endpoint(drain, receiver)
        with django_capture_on_commit_callbacks(execute=True):
            subs.subscribe(customer_id=customer.id, plan_id=plan.id)
            drain()
        assert receiver.types() == ["subscriptions.SubscriptionCreated"] and proxy.received == []


def test_a_delivery_whose_first_attempt_never_happened_is_sent_by_the_retry_job(drain, plan, settings):
    # given a delivery committed, but the process died before its after-commit attempt
    # (in this test on_commit callbacks are simply never run)
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as receiver:
        customer, endpoint, _ = customer_with_endpoint(drain, receiver)
        subs.subscribe(customer_id=customer.id, plan_id=plan.id)
        drain()
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
        assert delivery.status == "pending" and receiver.received == []
        now = timezone.now()
        # when beat runs the retry job: not before the pick-up delay, then once
        assert run_job("notifications.retry_webhooks", now=now) == 0
        run_job("notifications.retry_webhooks", now=now + timedelta(minutes=2))
        run_job("notifications.retry_webhooks", now=now + timedelta(minutes=3))
        # then the receiver got it exactly once, correctly signed
        assert receiver.types() == ["subscriptions.SubscriptionCreated"]
        assert receiver.received[0]["verified"]
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("succeeded", 1)


def test_the_owner_redelivers_from_the_webhooks_page_and_staff_from_the_admin(
    drain, plan, settings, client, admin_client, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as receiver:
        customer, endpoint, user = customer_with_endpoint(drain, receiver, username="hook")
        with django_capture_on_commit_callbacks(execute=True):
            subs.subscribe(customer_id=customer.id, plan_id=plan.id)
            drain()
        delivery = WebhookDelivery.objects.get(endpoint=endpoint)
        client.force_login(user)

        # the owner: the page lists the delivery, and the button sends it again
        page = client.get("/notifications/webhooks/").content.decode()
        assert "subscriptions.SubscriptionCreated" in page and "HTTP 200" in page
        with django_capture_on_commit_callbacks(execute=True):
            answer = client.post(f"/notifications/webhooks/deliveries/{delivery.pk}/redeliver/", follow=True)
        assert "is being sent again" in answer.content.decode()

        # staff: the admin action
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(
                "/admin/notifications/webhookdelivery/",
                {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
            )
        assert receiver.types() == ["subscriptions.SubscriptionCreated"] * 3
        assert all(r["verified"] for r in receiver.received)
        assert delivery.attempt_rows.count() == 3

        # another customer cannot redeliver it
        other = get_user_model().objects.create_user("other", "other@example.com", "pw-Other-123456")
        subs.register_customer(name="Other", email="other@example.com", currency="USD", country="GB", user=other)
        drain()
        client.force_login(other)
        assert client.post(f"/notifications/webhooks/deliveries/{delivery.pk}/redeliver/").status_code == 404
        assert len(receiver.received) == 3


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_to_one_endpoint_are_attempted_side_by_side(settings):
    # given an endpoint whose receiver is slow, and a worker in the middle of one attempt to it
    import threading
    import time

    from django.db import connection

    from sharedkernel.bus import drain

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    with Receiver(delay=1.0) as receiver:
        customer, _ = subs.register_customer(name="Busy", email="busy@example.com", currency="USD", country="GB")
        drain()
        endpoint = commands.register_endpoint(url=receiver.url, events=["*"], customer_id=customer.id)
        now = timezone.now()
        first, second = (
            WebhookDelivery.objects.create(
                endpoint=endpoint,
                event_id=f"6a1f5e1e-0000-4000-8000-00000000000{n}",
                event_type="subscriptions.SubscriptionCreated",
                body="{}",
                created_at=now,
                next_attempt_at=now,
            )
            for n in (1, 2)
        )

        def other_worker():
            webhooks.attempt(first.pk, after_attempts=0)
            connection.close()

        thread = threading.Thread(target=other_worker)
        thread.start()
        while not receiver.received:
            time.sleep(0.01)
        # when another worker attempts the second delivery meanwhile
        sent = webhooks.attempt(second.pk, after_attempts=0)
        thread.join()
        # then it goes out too, instead of being skipped as if it were taken
        assert sent is True and len(receiver.received) == 2
        assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.django_db
def test_a_webhook_post_inside_an_open_transaction_is_refused(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    with Receiver() as receiver:
        with pytest.raises(CallInsideTransaction, match="webhook.post"), transaction.atomic():
            webhooks.post(receiver.url, b"{}", {"Content-Type": "application/json"})
        assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_while_the_receiver_answers_leaves_an_attempt_that_is_found_and_retried(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    now = timezone.now()
    event_id = uuid.uuid4()
    with Receiver(delay=30) as receiver:
        # given a delivery whose first attempt a worker makes, to a receiver that takes its time to answer
        endpoint = WebhookEndpoint.objects.create(url=receiver.url, events=["*"], created_at=now)
        receiver.secret = endpoint.secret
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint,
            event_id=event_id,
            event_type="billing.PaymentSucceeded",
            body=json.dumps({"event_id": str(event_id), "event_type": "billing.PaymentSucceeded"}),
            created_at=now,
            next_attempt_at=now + timedelta(minutes=1),
        )
        # when the worker is SIGKILLed while the receiver is answering
        code = f"from notifications import webhooks\nwebhooks.attempt({str(delivery.pk)!r}, after_attempts=0)"
        with Doomed(code, WEBHOOK_ALLOW_PRIVATE_NETWORKS="1") as worker:
            worker.kill_when(lambda: receiver.received)
        receiver.delay = 0
        # then the attempt was on record before the POST went out, and nobody repeats it while it may be in flight
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        assert run_job("notifications.retry_webhooks", now=timezone.now()) == 0
        # and the retry job finds it once its answer is overdue, and sends it again (at least once, same event id)
        assert run_job("notifications.retry_webhooks", now=timezone.now() + timedelta(minutes=1, seconds=1)) == 1

    assert [r["event"]["event_id"] for r in receiver.received] == [str(event_id)] * 2
    assert all(r["verified"] for r in receiver.received)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 2, 200)
    first, second = delivery.attempt_rows.all()
    assert (first.number, first.status_code) == (1, None) and first.error.startswith("Interrupted")
    assert (second.number, second.status_code, second.error) == (2, 200, "")

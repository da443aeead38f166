"""Subscriptions end to end: API → commands → events → a real Celery worker → policies.

These tests commit for real; the worker is a separate `celery worker` process
on the same database and broker.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection

from sharedkernel.models import DeliveryStatus, EventDelivery, StoredEvent, TestClock
from sharedkernel.scheduling import run_job
from subscriptions.models import Subscription
from tests.conftest import ARTIFACTS, Worker, at, wait_until_handled, wait_until_queue_empty
from tests.flows.api import new_customer
from tests.helpers import api_client, event_types, payment_succeeded_payload, publish, staff_user

pytestmark = pytest.mark.flow


def staff_queue() -> str:
    from config.celery import app

    return app.conf.task_default_queue


def create_plan(client, code="pro-m", tier="professional", price="49.00", interval="month", trial_days=14):
    response = client.post(
        "/api/v1/plans/",
        {
            "code": code,
            "name": code.upper(),
            "tier": tier,
            "interval": interval,
            "trial_days": trial_days,
            "prices": [{"amount": price, "currency": "USD"}],
            "features": ["Everything"],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_a_trial_on_a_test_clock_expires_when_the_clock_passes_its_end(staff):
    # given a customer living on a test clock, trialing a 14-day plan
    clock = staff.post(
        "/api/v1/test-clocks/", {"frozen_time": "2025-03-01T09:00:00Z", "name": "trial"}, format="json"
    ).json()
    plan = create_plan(staff)
    customer = new_customer(staff, "Ada", clock)
    sub = staff.post(
        "/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"], "trial": True}, format="json"
    ).json()
    assert sub["status"] == "trialing" and sub["trial_end"] == "2025-03-15T09:00:00Z"

    # when the clock moves to one second before the end, the reminder fires but the trial goes on
    response = staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-03-15T08:59:59Z"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "ready"
    assert staff.get(f"/api/v1/subscriptions/{sub['id']}/").json()["status"] == "trialing"
    assert "subscriptions.TrialEndingSoon" in event_types(sub["id"])

    # then passing the end expires it (no card on file: suspended until one is added)
    staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-03-15T09:00:01Z"}, format="json")
    after = staff.get(f"/api/v1/subscriptions/{sub['id']}/").json()
    assert after["status"] == "suspended" and after["suspension_reason"] == "no_payment_method"
    assert event_types(sub["id"])[-2:] == ["subscriptions.TrialExpired", "subscriptions.SubscriptionSuspended"]
    expired = StoredEvent.objects.get(aggregate_id=sub["id"], event_type="subscriptions.TrialExpired")
    assert expired.occurred_on == at("2025-03-15 09:00") and str(expired.test_clock_id) == clock["id"]

    # and a card arriving (Billing's event) is handled by the worker: the subscription resumes
    publish(
        "billing.PaymentMethodUpdated",
        {"customer_id": customer["id"], "has_payment_method": True},
        occurred_on=at("2025-03-16 10:00"),
        test_clock_id=clock["id"],
    )
    wait_until_handled()
    assert Subscription.objects.get(pk=sub["id"]).status == "active"


def test_a_renewal_fires_once_when_beat_runs_twice(staff):
    plan = create_plan(staff)
    customer = new_customer(staff, "Bo", country="US")
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"]}, format="json").json()
    publish("billing.PaymentSucceeded", payment_succeeded_payload(customer["id"], sub["id"]))
    wait_until_handled()
    assert Subscription.objects.get(pk=sub["id"]).status == "active"
    period_end = Subscription.objects.get(pk=sub["id"]).current_period_end

    # two beat runs at the same moment, in parallel
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                run_job("subscriptions.renew_subscriptions", now=period_end + timedelta(minutes=1))
            )
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    connection.close()
    assert sorted(results) == [0, 1]
    assert event_types(sub["id"]).count("subscriptions.SubscriptionRenewed") == 1


def test_a_handler_run_twice_on_one_event_has_one_effect(staff):
    plan = create_plan(staff)
    customer = new_customer(staff, "Cy", country="US")
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"]}, format="json").json()
    event = publish("billing.PaymentSucceeded", payment_succeeded_payload(customer["id"], sub["id"]))
    wait_until_handled()
    delivery = EventDelivery.objects.get(event_id=event.position, handler="subscriptions.activate_or_resume_when_paid")

    # the broker delivers the same message again (a redelivery after a lost ack)
    from sharedkernel.tasks import deliver_events

    deliver_events.apply_async(args=(delivery.handler, [delivery.pk]))
    deliver_events.apply_async(args=(delivery.handler, [delivery.pk]))
    wait_until_queue_empty(staff_queue(), timeout=30)  # both copies taken and run, no fixed sleep
    wait_until_handled()
    assert event_types(sub["id"]).count("subscriptions.SubscriptionActivated") == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DONE and delivery.attempts == 1


def test_two_concurrent_plan_changes_one_wins_the_other_gets_409(staff, settings):
    if connection.vendor != "postgresql":
        pytest.skip("Concurrent writers need PostgreSQL (SQLite serialises whole transactions).")
    basic = create_plan(staff, code="basic-m", tier="basic", price="19.00")
    pro = create_plan(staff, code="pro-m", price="49.00")
    team = create_plan(staff, code="team-m", price="79.00")
    customer = new_customer(staff, "Di", country="US")
    sub = staff.post("/api/v1/subscriptions/", {"customer": customer["id"], "plan": basic["id"]}, format="json").json()
    publish("billing.PaymentSucceeded", payment_succeeded_payload(customer["id"], sub["id"]))
    wait_until_handled()

    # both requests read the subscription before either writes
    from django.contrib.auth import get_user_model

    from subscriptions import models as subscription_models

    User = get_user_model()

    barrier = threading.Barrier(2, timeout=10)
    original = subscription_models.Subscription.change_plan

    def change_plan_after_both_have_read(self, **kwargs):
        barrier.wait()
        return original(self, **kwargs)

    subscription_models.Subscription.change_plan = change_plan_after_both_have_read
    responses = []

    def request(plan_id):
        client = api_client(User.objects.get(username="staff"))
        responses.append(
            client.post(f"/api/v1/subscriptions/{sub['id']}/change-plan/", {"plan": plan_id}, format="json")
        )
        connection.close()

    try:
        threads = [threading.Thread(target=request, args=(p["id"],)) for p in (pro, team)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        subscription_models.Subscription.change_plan = original
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.content for r in responses]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert loser["error"]["code"] == "concurrent_update"
    winner = next(r for r in responses if r.status_code == 200).json()
    assert Subscription.objects.get(pk=sub["id"]).plan_id.hex == winner["plan"].replace("-", "")
    assert event_types(sub["id"]).count("subscriptions.PlanChanged") == 1


def reset_producers(app) -> None:
    """Forget pooled broker connections so the next publish uses the current broker_url."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_with_the_broker_stopped_a_command_commits_and_the_relay_delivers_later(flow, settings):
    """A private Redis is the broker of a dedicated worker; we stop it, act, restart it."""
    redis_server = shutil.which("redis-server")
    if not redis_server:
        pytest.skip("redis-server is not installed")
    from config.celery import app

    port = _free_port()
    broker = f"redis://127.0.0.1:{port}/0"

    def start_redis():
        return subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_for_port(up: bool):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if (s.connect_ex(("127.0.0.1", port)) == 0) == up:
                    return
            time.sleep(0.05)
        raise AssertionError(f"redis on {port} did not come {'up' if up else 'down'}")

    redis = start_redis()
    wait_for_port(True)
    queue = flow.queue + "-private"
    env = dict(
        flow.env, REDIS_URL=broker, CELERY_QUEUE=queue, WORKER_READY_FILE=str(ARTIFACTS / f"worker-{queue}.ready")
    )
    worker = Worker(queue, env, ARTIFACTS / "celery-worker-private.log")
    worker.start()
    original_broker, original_queue = app.conf.broker_url, app.conf.task_default_queue
    reset_producers(app)
    app.conf.broker_url, app.conf.task_default_queue = broker, queue
    try:
        staff = api_client(staff_user("staff2"))
        plan = create_plan(staff)
        customer = new_customer(staff, "Ed", country="US")
        sub = staff.post(
            "/api/v1/subscriptions/", {"customer": customer["id"], "plan": plan["id"]}, format="json"
        ).json()

        wait_until_handled()  # Billing's first-invoice chain has run; the worker is idle

        # the broker goes away
        redis.terminate()
        redis.wait()
        wait_for_port(False)
        reset_producers(app)

        # a payment arrives: the event commits even though nothing can be sent
        event = publish("billing.PaymentSucceeded", payment_succeeded_payload(customer["id"], sub["id"]))
        assert StoredEvent.objects.filter(event_id=event.event_id).exists()
        delivery = EventDelivery.objects.get(
            event_id=event.position, handler="subscriptions.activate_or_resume_when_paid"
        )
        assert delivery.status == DeliveryStatus.PENDING
        time.sleep(1)
        assert Subscription.objects.get(pk=sub["id"]).status == "pending_payment"

        # the broker comes back; the relay (what beat runs every 5 s) re-dispatches
        redis = start_redis()
        wait_for_port(True)
        reset_producers(app)
        wait_until_handled(timeout=60)
        assert Subscription.objects.get(pk=sub["id"]).status == "active"
    finally:
        app.conf.broker_url, app.conf.task_default_queue = original_broker, original_queue
        reset_producers(app)
        worker.stop()
        redis.terminate()
        redis.wait()


def test_healthz_reports_database_broker_cache_and_beat(flow, client):
    from sharedkernel.tasks import beat_heartbeat

    beat_heartbeat()
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "cache": "ok", "beat": "ok"}}
    TestClock.objects.all().delete()
    from sharedkernel.models import Heartbeat

    Heartbeat.objects.filter(name="beat").update(beat_at=at("2020-01-01 00:00"))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["checks"]["beat"].startswith("failing")

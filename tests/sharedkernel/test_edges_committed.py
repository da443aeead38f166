"""The plumbing's edges that make events happen, committed for real (no wrapping test transaction):
test clocks (API and admin), the failed-delivery retry in the admin, the Celery tasks beat and the
bus send, and the management commands.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from analytics.models import SubscriptionView
from billing.models import BillingAccount
from sharedkernel import tasks
from sharedkernel.bus import DeliveriesFailed
from sharedkernel.models import OPEN_STATUSES, DeliveryStatus, EventDelivery, Heartbeat, StoredEvent, TestClock
from sharedkernel.values import Money
from subscriptions import commands as subs
from subscriptions.models import Plan, Subscription
from tests.helpers import api_client, staff_user

pytestmark = pytest.mark.django_db(transaction=True)


def trial_on_a_clock(drain, clock_id: str) -> Subscription:
    plan = subs.define_plan(
        code="pro", name="Pro", tier="professional", interval="month", trial_days=14, prices=[Money("30.00", "USD")]
    )
    customer, _ = subs.register_customer(
        name="Clocked", email="clock@example.com", currency="USD", country="GB", test_clock_id=clock_id
    )
    drain()
    sub = subs.subscribe(customer_id=customer.pk, plan_id=plan.pk, trial=True)
    drain()
    return sub


def test_the_api_creates_and_advances_a_test_clock_running_the_due_work(drain):
    staff = api_client(staff_user())
    created = staff.post("/api/v1/test-clocks/", {"frozen_time": "2025-03-01T09:00:00Z"}, format="json")
    assert created.status_code == 201
    clock = created.json()
    sub = trial_on_a_clock(drain, clock["id"])
    advanced = staff.post(f"/api/v1/test-clocks/{clock['id']}/advance/", {"to": "2025-03-16T00:00:00Z"}, format="json")
    assert advanced.status_code == 200 and advanced.json()["frozen_time"] == "2025-03-16T00:00:00Z"
    sub.refresh_from_db()
    assert sub.status == "suspended"  # no payment method when the trial ended
    assert StoredEvent.objects.filter(aggregate_id=str(sub.pk), event_type="subscriptions.TrialExpired").exists()


def test_the_admin_advances_test_clocks_by_a_day_and_by_thirty(client, drain):
    clock = TestClock.objects.create(name="demo", frozen_time=timezone.now())
    sub = trial_on_a_clock(drain, str(clock.pk))
    client.force_login(staff_user("boss"))
    for action, days in (("advance_one_day", 1), ("advance_one_month", 30)):
        page = client.post(
            "/admin/sharedkernel/testclock/", {"action": action, "_selected_action": [clock.pk]}, follow=True
        )
        assert f"advanced by {days} day(s)" in page.content.decode()
    clock.refresh_from_db()
    assert clock.status == "ready"
    sub.refresh_from_db()
    assert sub.status == "suspended"
    assert StoredEvent.objects.filter(aggregate_id=str(sub.pk), event_type="subscriptions.TrialExpired").exists()


def test_staff_retry_a_failed_delivery_and_its_handler_runs(client, drain):
    customer, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    failed = EventDelivery.objects.get(handler="billing.open_billing_account")
    EventDelivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED, last_error="boom")
    with pytest.raises(DeliveriesFailed, match="billing.open_billing_account: boom"):
        drain()  # the failure is loud until staff act on it
    assert not BillingAccount.objects.filter(pk=customer.pk).exists()

    client.force_login(staff_user("boss"))
    page = client.post(
        "/admin/sharedkernel/eventdelivery/", {"action": "retry", "_selected_action": [failed.pk]}, follow=True
    )
    assert "1 failed delivery(ies) queued for retry" in page.content.decode()
    drain()
    failed.refresh_from_db()
    assert failed.status == "done"
    assert BillingAccount.objects.filter(pk=customer.pk).exists()
    assert StoredEvent.objects.filter(event_type="billing.BillingAccountOpened", aggregate_id=str(customer.pk))


def test_the_celery_tasks_deliver_relay_and_run_jobs(drain):
    customer, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    # deliver_events: what a worker runs after commit
    opening = EventDelivery.objects.get(handler="billing.open_billing_account")
    assert tasks.deliver_events.apply(args=("billing.open_billing_account", [opening.pk])).get() == 1
    assert BillingAccount.objects.filter(pk=customer.pk).exists()
    # relay_outbox: what beat runs for deliveries the broker lost
    lost = EventDelivery.objects.filter(status__in=OPEN_STATUSES)
    lost_ids = list(lost.values_list("pk", flat=True))
    lost.update(dispatch_after=timezone.now())
    assert tasks.relay_outbox.apply().get() == len(lost_ids) > 0
    assert set(EventDelivery.objects.filter(pk__in=lost_ids).values_list("status", flat=True)) == {"done"}
    drain()
    # run_scheduled_job: what beat runs for every job of the schedule
    assert tasks.run_scheduled_job.apply(args=("analytics.monthly_report",)).get() == 1
    assert StoredEvent.objects.filter(event_type="analytics.ReportGenerated").count() == 1
    tasks.beat_heartbeat.apply().get()
    assert Heartbeat.objects.filter(name="beat").exists()


def test_the_prune_job_deletes_old_done_deliveries_and_a_redelivery_of_one_applies_nothing(drain, admin_client):
    customer, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    drain()
    opening = EventDelivery.objects.get(handler="billing.open_billing_account")
    assert opening.status == "done"
    EventDelivery.objects.filter(status="done").update(completed_at=timezone.now() - timedelta(days=8))
    fresh, _ = subs.register_customer(name="Bob", email="bob@example.com", currency="USD", country="GB")
    drain()
    kept = set(EventDelivery.objects.filter(event__aggregate_id=str(fresh.pk)).values_list("pk", flat=True))
    assert tasks.prune_outbox.apply().get() >= 1
    assert not EventDelivery.objects.filter(pk=opening.pk).exists()
    assert kept <= set(EventDelivery.objects.values_list("pk", flat=True))  # recent rows stay
    # the broker hands the old message over again: nothing left to claim, nothing applied twice
    accounts = BillingAccount.objects.filter(pk=customer.pk).count()
    assert tasks.deliver_events.apply(args=("billing.open_billing_account", [opening.pk])).get() == 0
    assert BillingAccount.objects.filter(pk=customer.pk).count() == accounts == 1
    page = admin_client.get("/admin/sharedkernel/eventdelivery/")
    assert page.status_code == 200
    assert b"done rows kept 7 days; last prune: 20" in page.content


def test_replay_events_rebuilds_the_analytics_projections(drain):
    plan = subs.define_plan(
        code="pro", name="Pro", tier="professional", interval="month", trial_days=14, prices=[Money("30.00", "USD")]
    )
    customer, _ = subs.register_customer(name="Ada", email="ada@example.com", currency="USD", country="GB")
    drain()
    sub = subs.subscribe(customer_id=customer.pk, plan_id=plan.pk, trial=True)
    drain()
    before = list(SubscriptionView.objects.values_list("subscription_id", "status"))
    assert before == [(sub.pk, "trialing")]
    out = StringIO()
    call_command("replay_events", "--context", "analytics", "--reset", "--no-progress", stdout=out)
    assert "replayed" in out.getvalue()
    assert list(SubscriptionView.objects.values_list("subscription_id", "status")) == before


def test_seed_demo_makes_history_through_the_real_commands_and_jobs():
    out = StringIO()
    call_command("seed_demo", "--months", "1", "--customers", "3", stdout=out)
    assert Plan.objects.exists() and Subscription.objects.count() >= 3
    assert StoredEvent.objects.filter(event_type="subscriptions.CustomerRegistered").count() >= 3
    assert StoredEvent.objects.filter(event_type="billing.PaymentSucceeded").exists()
    assert not EventDelivery.objects.filter(status__in=[*OPEN_STATUSES, DeliveryStatus.FAILED]).exists()

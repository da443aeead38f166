"""Every Notifications edge that records an event, committed for real (no wrapping test transaction):
redelivery (API, customer page, admin), the bounce callback, the beat jobs and the attempt task.

With nothing wrapping the test, after-commit work (a redelivery's attempt, queued mail) runs as in
production, right after the command commits; the receivers and the mail server are real, on loopback.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from notifications import commands
from notifications.models import Notification, Recipient, Suppression, WebhookDelivery, WebhookEndpoint
from notifications.tasks import attempt_webhook
from sharedkernel.clock import FixedClock
from sharedkernel.models import StoredEvent
from sharedkernel.scheduling import run_job
from sharedkernel.values import Money
from subscriptions import commands as subs
from tests.helpers import api_client, staff_user
from tests.notifications.helpers import report_bounce
from tests.notifications.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback_receivers(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True


@pytest.fixture
def plan():
    return subs.define_plan(
        code="pro", name="Pro", tier="professional", interval="month", trial_days=14, prices=[Money("30.00", "USD")]
    )


def dispatched(delivery) -> int:
    return StoredEvent.objects.filter(
        event_type="notifications.WebhookDispatched", payload__delivery_id=str(delivery.pk)
    ).count()


def hooked_customer(drain, receiver, plan):
    user = get_user_model().objects.create_user("hook", "hook@example.com", "pw-Hook-123456")
    customer, _ = subs.register_customer(name="Hook", email="hook@example.com", currency="USD", country="GB", user=user)
    drain()
    endpoint = commands.register_endpoint(
        url=receiver.url, events=["subscriptions.SubscriptionCreated"], customer_id=customer.id
    )
    receiver.secret = endpoint.secret
    subs.subscribe(customer_id=customer.id, plan_id=plan.id)
    drain()  # the first attempt runs right after the handler commits
    return user, WebhookDelivery.objects.get(endpoint=endpoint)


def test_redelivery_from_the_api_the_page_and_the_admin_sends_and_records_each_attempt(drain, plan, client):
    with Receiver() as receiver:
        user, delivery = hooked_customer(drain, receiver, plan)
        assert dispatched(delivery) == 1

        answer = api_client(staff_user()).post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
        assert answer.status_code == 200 and answer.json()["attempts"] == 2

        client.force_login(user)
        page = client.post(f"/notifications/webhooks/deliveries/{delivery.pk}/redeliver/", follow=True)
        assert "is being sent again" in page.content.decode()

        client.force_login(staff_user("boss"))
        page = client.post(
            "/admin/notifications/webhookdelivery/",
            {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
            follow=True,
        )
        assert "Redeliver: 1 done" in page.content.decode()

        assert receiver.types() == ["subscriptions.SubscriptionCreated"] * 4
        assert all(r["verified"] for r in receiver.received)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 4)
    assert dispatched(delivery) == 4


def test_the_bounce_callback_marks_the_mail_and_records_email_bounced(drain, client, settings):
    settings.BOUNCE_WEBHOOK_TOKEN = "bounce-secret"
    customer, _ = subs.register_customer(name="B", email="bouncy@example.com", currency="USD", country="GB")
    drain()
    note = Notification.objects.get(customer_id=customer.id)
    response = report_bounce(client, note)
    assert response.status_code == 202
    note.refresh_from_db()
    assert note.status == "bounced" and Suppression.objects.filter(email="bouncy@example.com").exists()
    [bounced] = StoredEvent.objects.filter(event_type="notifications.EmailBounced")
    assert bounced.payload["notification_id"] == str(note.pk)


def test_the_reminder_job_sends_the_trial_reminder_and_records_email_sent(drain, plan):
    start = timezone.now()
    customer, _ = subs.register_customer(name="T", email="trial@example.com", currency="USD", country="GB")
    drain()
    subs.subscribe(customer_id=customer.id, plan_id=plan.id, trial=True, clock=FixedClock(start))
    drain()
    assert run_job("notifications.send_reminders", now=start + timedelta(days=10)) == 0  # too early
    assert run_job("notifications.send_reminders", now=start + timedelta(days=12)) == 1
    reminders = [m for m in mail.outbox if "trial ends in" in m.subject]
    assert [m.to for m in reminders] == [["trial@example.com"]]
    note = Notification.objects.get(template="trial_reminder")
    assert note.status == "sent"
    assert StoredEvent.objects.filter(event_type="notifications.EmailSent", payload__notification_id=str(note.pk))


def test_the_attempt_task_and_the_webhook_retry_job_send_what_is_due(drain, plan):
    with Receiver(answers=[500, 503]) as receiver:
        _, delivery = hooked_customer(drain, receiver, plan)  # first attempt: 500
        # the Celery task a worker runs for an attempt after commit: 503, recorded, retried later
        assert attempt_webhook.apply(args=(str(delivery.pk), 1)).get() is False
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == ("retrying", 2) and delivery.next_attempt_at is not None
        assert StoredEvent.objects.filter(event_type="notifications.WebhookFailed").count() == 2
        # beat: the retry that is due goes through
        assert run_job("notifications.retry_webhooks", now=delivery.next_attempt_at) == 1
        assert len(receiver.received) == 3
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("succeeded", 3)
    assert dispatched(delivery) == 1


def test_the_mail_retry_job_sends_what_the_server_refused(drain, settings):
    from tests.fakes.smtp import SmtpSink

    sink = SmtpSink()  # a free port, not listening yet
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", sink.port, 2
    subs.register_customer(name="Real", email="real@example.com", currency="USD", country="GB")
    drain()
    assert set(Notification.objects.values_list("status", flat=True)) == {"failed"}
    sink.start()
    try:
        assert run_job("notifications.retry_mail", now=timezone.now() + timedelta(minutes=2)) == 1
    finally:
        sink.stop()
    assert [rcpts for rcpts, _ in sink.messages] == [["real@example.com"]]
    assert StoredEvent.objects.filter(event_type="notifications.EmailSent").count() == 1


def test_endpoint_and_preference_edges_change_rows_and_record_no_event(drain, client):
    # given a customer with a login
    user = get_user_model().objects.create_user("pref", "pref@example.com", "pw-Pref-123456")
    customer, _ = subs.register_customer(name="P", email="pref@example.com", currency="USD", country="GB", user=user)
    drain()
    before = StoredEvent.objects.count()
    staff = api_client(staff_user())
    with Receiver() as receiver:
        # the API: register, disable, enable, delete
        created = staff.post("/api/v1/webhook-endpoints/", {"url": receiver.url, "customer": str(customer.pk)})
        assert created.status_code == 201 and created.json()["secret"]
        endpoint_id = created.json()["id"]
        assert staff.post(f"/api/v1/webhook-endpoints/{endpoint_id}/disable/").json()["active"] is False
        assert staff.post(f"/api/v1/webhook-endpoints/{endpoint_id}/enable/").json()["active"] is True
        assert staff.delete(f"/api/v1/webhook-endpoints/{endpoint_id}/").status_code == 204

        # the customer's pages: preferences, register, disable, enable, remove
        client.force_login(user)
        page = client.post("/notifications/preferences/", {"essential_only": "on"}, follow=True)
        assert "preferences are saved" in page.content.decode()
        page = client.post("/notifications/webhooks/", {"url": receiver.url, "events": ["*"]}, follow=True)
        assert "Copy its signing secret now" in page.content.decode()
        endpoint = WebhookEndpoint.objects.get(customer_id=customer.pk)
        for verb, said in (("disable", "Nothing more is sent"), ("enable", "is enabled again")):
            page = client.post(f"/notifications/webhooks/{endpoint.pk}/{verb}/", follow=True)
            assert said in page.content.decode()

        # the admin: disable and enable
        client.force_login(staff_user("boss"))
        for action, said in (("disable", "Disable: 1 done"), ("enable", "Enable: 1 done")):
            page = client.post(
                "/admin/notifications/webhookendpoint/",
                {"action": action, "_selected_action": [str(endpoint.pk)]},
                follow=True,
            )
            assert said in page.content.decode()
        client.force_login(user)
        page = client.post(f"/notifications/webhooks/{endpoint.pk}/remove/", follow=True)
        assert "is removed" in page.content.decode()

    assert not WebhookEndpoint.objects.exists()
    assert Recipient.objects.get(pk=customer.pk).essential_only is True
    assert StoredEvent.objects.count() == before  # as the inventory says: rows change, no event is recorded

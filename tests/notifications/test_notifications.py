"""Notifications in-process: SSRF guard, bounces, preferences, idempotency, pages and admin."""

from __future__ import annotations

import pytest
from django.core import mail

from notifications.models import Notification, Suppression
from sharedkernel.bus import run_deliveries
from sharedkernel.models import EventDelivery
from subscriptions import commands as subs
from tests.notifications.helpers import dead_endpoint, report_bounce

pytestmark = pytest.mark.django_db


@pytest.fixture
def drain(drain, django_capture_on_commit_callbacks):
    """Handle deliveries and run what they leave for after commit (sending the mail), as the worker does."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            drain()

    return run


def register(drain, email="cy@example.com", user=None):
    c, _ = subs.register_customer(name="Cy", email=email, currency="USD", country="GB", user=user)
    drain()
    return c


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest",
        "http://localhost/hook",
        "http://[::1]/hook",
        "ftp://example.com/x",
    ],
)
def test_private_and_local_urls_are_refused_with_a_clear_error(staff, url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    response = staff.post("/api/v1/webhook-endpoints/", {"url": url, "events": ["*"]}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert "url" in error["details"] or "url" in str(error)


def test_unknown_event_types_are_refused(staff, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    response = staff.post(
        "/api/v1/webhook-endpoints/", {"url": "http://127.0.0.1:9/x", "events": ["billing.Nope"]}, format="json"
    )
    assert response.status_code == 400 and "billing.Nope" in response.json()["error"]["message"]


def test_one_event_never_sends_two_emails_even_when_handled_twice(drain):
    c = register(drain)
    assert [m.subject for m in mail.outbox] == ["Welcome to SubscriptionHub, Cy"]
    delivery = EventDelivery.objects.get(handler="notifications.welcome")
    EventDelivery.objects.filter(pk=delivery.pk).update(status="pending")  # as if the broker delivered it again
    run_deliveries("notifications.welcome", [delivery.pk])
    assert len(mail.outbox) == 1 and Notification.objects.filter(customer_id=c.id).count() == 1


def test_bounce_marks_the_log_and_stops_non_essential_mail(drain, client, settings):
    settings.BOUNCE_WEBHOOK_TOKEN = "bounce-secret"
    c = register(drain, email="bouncy@example.com")
    note = Notification.objects.get(customer_id=c.id)
    assert (
        client.post(
            "/api/v1/notifications-bounces/", {"email": "bouncy@example.com"}, content_type="application/json"
        ).status_code
        == 404
    )  # no token: nothing to see
    response = report_bounce(client, note)
    assert response.status_code == 202
    note.refresh_from_db()
    assert note.status == "bounced" and "550" in note.error
    assert Suppression.objects.filter(email="bouncy@example.com").exists()
    from notifications import mail as mailer

    skipped = mailer.queue(
        template="trial_reminder",
        email="bouncy@example.com",
        customer_id=c.id,
        cause_event_id="6a1f5e1e-0000-4000-8000-000000000009",
        cause_event_type="test",
        context={"plan_name": "Pro"},
        essential_only=False,
    )
    assert skipped.status == "suppressed"


def test_preferences_page_turns_off_reminders_but_not_receipts(drain, client):
    from django.contrib.auth import get_user_model

    from notifications import mail as mailer

    user = get_user_model().objects.create_user("cy", "cy@example.com", "pw-Cy-123456")
    c = register(drain, user=user)
    client.force_login(user)
    page = client.get("/notifications/preferences/").content.decode()
    assert "Welcome to SubscriptionHub, Cy" in page  # the log of what was sent
    client.post("/notifications/preferences/", {"essential_only": "on"})

    def queue(template: str, cause_event_id: str):
        return mailer.queue(
            template=template,
            email=c.email,
            customer_id=c.id,
            cause_event_id=cause_event_id,
            cause_event_type="t",
            context={},
            essential_only=True,
        )

    reminder = queue("trial_reminder", "6a1f5e1e-0000-4000-8000-00000000000a")
    receipt = queue("receipt", "6a1f5e1e-0000-4000-8000-00000000000b")
    assert (reminder.status, receipt.status) == ("suppressed", "queued")


def test_customer_webhooks_page_shows_the_secret_once(drain, client, settings):
    from django.contrib.auth import get_user_model

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    user = get_user_model().objects.create_user("dee", "dee@example.com", "pw-Dee-123456")
    register(drain, email="dee@example.com", user=user)
    client.force_login(user)
    refused = client.post("/notifications/webhooks/", {"url": "http://127.0.0.1/x", "events": ["*"]}, follow=True)
    assert "private or local address" in refused.content.decode()
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    page = client.post(
        "/notifications/webhooks/", {"url": "http://127.0.0.1:9/hooks", "events": ["*"]}
    ).content.decode()
    assert "whsec_" in page
    assert "whsec_" not in client.get("/notifications/webhooks/").content.decode()


def test_admin_log_deliveries_and_template_previews(admin_client, drain):
    register(drain)
    assert admin_client.get("/admin/notifications/notification/").status_code == 200
    assert admin_client.get("/admin/notifications/webhookdelivery/").status_code == 200
    preview = admin_client.get("/admin/notifications/notification/preview/dunning/")
    assert preview.status_code == 200 and b"Second notice" in preview.content


def test_an_endpoint_failing_for_days_is_disabled_and_its_owner_emailed(
    drain, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from notifications import webhooks

    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    c = register(drain, email="owner@example.com")
    endpoint, delivery = dead_endpoint(c, failing_for=timedelta(days=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.attempt(delivery.pk, now=timezone.now()) is False  # nothing listens on port 9
    endpoint.refresh_from_db()
    assert not endpoint.active and "3 days" in endpoint.disabled_reason
    assert any(m.subject.startswith("We stopped sending webhooks to http://127.0.0.1:9/dead") for m in mail.outbox)


def test_the_trial_reminder_waits_for_its_time_and_is_not_sent_once_the_trial_is_cancelled(
    drain, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from notifications.models import Reminder
    from sharedkernel.clock import FixedClock
    from sharedkernel.scheduling import run_job
    from sharedkernel.values import Money
    from tests.conftest import at

    settings.NOTIFY_TRIAL_REMINDER_DAYS = 3
    plan = subs.define_plan(
        code="t", name="Team", tier="professional", interval="month", trial_days=14, prices=[Money("30.00", "USD")]
    )
    start = at("2025-03-01 09:00")
    kept, dropped = register(drain, email="kept@example.com"), register(drain, email="dropped@example.com")
    sub_kept = subs.subscribe(customer_id=kept.id, plan_id=plan.id, trial=True, clock=FixedClock(start))
    sub_dropped = subs.subscribe(customer_id=dropped.id, plan_id=plan.id, trial=True, clock=FixedClock(start))
    drain()
    assert Reminder.objects.get(subscription_id=sub_kept.id).send_at == start + timedelta(days=11)
    subs.cancel_subscription(subscription_id=sub_dropped.id, clock=FixedClock(start + timedelta(days=2)))
    drain()
    assert run_job("notifications.send_reminders", now=start + timedelta(days=10)) == 0  # too early
    with django_capture_on_commit_callbacks(execute=True):
        with_reminder = run_job("notifications.send_reminders", now=start + timedelta(days=11))
    assert with_reminder == 1
    reminders = [m for m in mail.outbox if "trial ends in" in m.subject]
    assert [m.to for m in reminders] == [["kept@example.com"]]
    assert reminders[0].subject == "Your Team trial ends in 3 days"


def test_a_mail_for_a_customer_not_known_yet_waits_for_the_recipient_and_goes_when_it_arrives(drain):
    # given a customer whose Recipient Notifications has not written yet (its delivery still open)
    from notifications.models import Recipient, recipient_needed
    from sharedkernel.bus import DeliveriesWaiting
    from sharedkernel.models import DeliveryStatus
    from sharedkernel.values import Money

    c = register(drain, email="late@example.com")
    plan = subs.define_plan(
        code="w", name="Team", tier="professional", interval="month", trial_days=14, prices=[Money("30.00", "USD")]
    )
    Recipient.objects.filter(pk=c.pk).delete()
    sub = subs.subscribe(customer_id=c.id, plan_id=plan.id, trial=True)
    drain()
    subs.cancel_subscription(subscription_id=sub.id)

    # when the cancellation is handled before the recipient exists
    with pytest.raises(DeliveriesWaiting):
        drain()

    # then its confirmation waits — no error, no attempt counted — for that recipient
    waiting = EventDelivery.objects.get(handler="notifications.confirm_cancellation")
    assert waiting.status == DeliveryStatus.WAITING and waiting.waiting_for == recipient_needed(c.pk)
    assert waiting.attempts == 0 and not waiting.last_error
    assert not [m for m in mail.outbox if "cancelled" in m.subject]

    # when the recipient arrives, the confirmation goes
    arriving = EventDelivery.objects.get(handler="notifications.remember_recipient")
    EventDelivery.objects.filter(pk=arriving.pk).update(status=DeliveryStatus.PENDING)
    drain()
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.DONE
    assert [m.to for m in mail.outbox if "cancelled" in m.subject] == [["late@example.com"]]


def test_a_welcome_left_open_from_before_the_split_still_makes_the_recipient_the_later_mail_needs(drain):
    # given a customer registered before remember_recipient existed: only its welcome delivery is open
    from notifications.models import Recipient
    from sharedkernel.models import DeliveryStatus
    from sharedkernel.values import Money

    c, _ = subs.register_customer(name="Old", email="old@example.com", currency="USD", country="GB")
    EventDelivery.objects.filter(handler="notifications.remember_recipient").delete()

    # when the welcome is handled
    drain()

    # then the customer is welcomed and Notifications knows where to write to them
    assert [m.to for m in mail.outbox if "elcome" in m.subject] == [["old@example.com"]]
    assert Recipient.objects.get(pk=c.pk).email == "old@example.com"

    # and their next mail goes instead of waiting a day for a recipient that would never come
    plan = subs.define_plan(
        code="o", name="Team", tier="professional", interval="month", trial_days=14, prices=[Money("30.00", "USD")]
    )
    sub = subs.subscribe(customer_id=c.id, plan_id=plan.id, trial=True)
    drain()
    subs.cancel_subscription(subscription_id=sub.id)
    drain()
    assert EventDelivery.objects.get(handler="notifications.confirm_cancellation").status == DeliveryStatus.DONE
    assert [m.to for m in mail.outbox if "cancelled" in m.subject] == [["old@example.com"]]

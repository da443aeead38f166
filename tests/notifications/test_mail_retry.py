"""Mail the server refused is retried by beat in real time, whatever clock the customer lives on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions import commands as subs

pytestmark = pytest.mark.django_db


def test_mail_the_server_refused_goes_out_when_it_is_back_for_real_and_test_clock_customers(
    drain, settings, django_capture_on_commit_callbacks
):
    from sharedkernel.models import TestClock
    from sharedkernel.scheduling import run_job
    from tests.fakes.smtp import SmtpSink

    # given a mail server that is down while two customers (one on a test clock) are welcomed
    sink = SmtpSink()  # picks a free port, not listening yet
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", sink.port, 2
    clock = TestClock.objects.create(frozen_time=timezone.now() - timedelta(days=400))
    with django_capture_on_commit_callbacks(execute=True):
        subs.register_customer(name="Real", email="real@example.com", currency="USD", country="GB")
        subs.register_customer(
            name="Clocked", email="clocked@example.com", currency="USD", country="GB", test_clock_id=str(clock.pk)
        )
        drain()
    from notifications.models import Notification

    assert set(Notification.objects.values_list("status", flat=True)) == {"failed"}

    # when the server is back and beat runs the retry a couple of minutes later
    sink.start()
    try:
        run_job("notifications.retry_mail", now=timezone.now() + timedelta(minutes=2))
    finally:
        sink.stop()

    # then both went out, once
    assert sorted(address for rcpts, _ in sink.messages for address in rcpts) == [
        "clocked@example.com",
        "real@example.com",
    ]
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}

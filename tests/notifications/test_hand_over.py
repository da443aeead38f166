"""E-mail is handed to the mail server with no transaction open, and a crash in the middle of a batch costs
at most the one message in flight: a real SMTP server on loopback, and a real sending process SIGKILLed
half-way."""

from __future__ import annotations

import uuid
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from notifications import mail, marks
from notifications.models import Notification
from sharedkernel.models import StoredEvent
from sharedkernel.outside import CallInsideTransaction
from sharedkernel.scheduling import run_job
from tests.fakes.smtp import SmtpSink
from tests.notifications.crash import Doomed


def logged_invoice_mails(count: int) -> list[Notification]:
    """What a bill run's invoice-mail handler committed: one queued log row per invoice, not sent yet."""
    now = timezone.now()
    notes = [
        Notification(
            customer_id=uuid.uuid4(),
            email=f"c{i}@bill-run.example",
            template="invoice",
            cause_event_id=uuid.uuid4(),
            cause_event_type="billing.InvoiceFinalized",
            context={"name": f"C{i}", "number": f"INV-2026-{i:05d}", "amount_due": "30.00 USD", "lines": []},
            subject=f"Invoice INV-2026-{i:05d} — 30.00 USD",
            created_at=now,
        )
        for i in range(count)
    ]
    Notification.objects.bulk_create(notes)
    return notes


@contextmanager
def mail_server(settings, *, delay: float = 0):
    """A real SMTP server on loopback taking ``delay`` seconds a message, Django's mail pointed at it;
    yields it and the environment that points a child process at it too, and stops it afterwards."""
    sink = SmtpSink(delay=delay).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    env = {"EMAIL_BACKEND": settings.EMAIL_BACKEND, "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(sink.port)}
    try:
        yield sink, env
    finally:
        sink.stop()


def synchronous_commit() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_a_sender_killed_mid_batch_sends_each_email_once_and_the_backlog_goes_out_within_a_minute(settings):
    from config.celery import SCHEDULE

    # given a bill run's 300 invoice e-mails, logged, and a mail server that takes 5 ms to accept each message
    notes = logged_invoice_mails(300)
    with mail_server(settings, delay=0.005) as (sink, env):
        # when the worker sending them is SIGKILLed once 150 have reached the server
        ids = [str(n.pk) for n in notes]
        with Doomed(f"from notifications import mail\nmail.send_many({ids!r})", **env) as worker:
            worker.kill_when(lambda: sink.count() >= 150)
        crashed_at = timezone.now()
        on_server = sink.count()

        # then the drain job (beat, every few seconds) sends at once what the dead worker had not taken,
        run_job("notifications.retry_mail", now=crashed_at)
        left = Notification.objects.exclude(status="sent").count()
        # and a minute later, what it had taken: all of it in one run, not 200 every two minutes
        run_job("notifications.retry_mail", now=crashed_at + timedelta(minutes=1, seconds=1))

    assert 150 <= on_server < 300 and 0 < left < 300 - on_server
    assert SCHEDULE["notifications.retry_mail"]["schedule"] <= 15
    received = Counter(message["Message-ID"] for _, message in sink.messages)
    assert set(received) == {n.message_id for n in notes}  # every customer got their invoice
    twice = [message_id for message_id, times in received.items() if times > 1]
    assert len(twice) <= 1 and all(received[m] == 2 for m in twice)  # at most the one in flight, twice
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}
    # and the log says so once per message: one EmailSent each, none lost with the worker, none doubled
    sent_events = Counter(
        StoredEvent.objects.filter(event_type="notifications.EmailSent").values_list("aggregate_id", flat=True)
    )
    assert sent_events == Counter({str(n.pk): 1 for n in notes})


@pytest.mark.django_db(transaction=True)
def test_a_slow_sender_keeps_its_hold_so_the_drain_job_never_sends_its_mail_as_well(settings, monkeypatch):
    import threading
    import time

    from django.db import connection

    # given a sender holding ten e-mails for 2 s at a time, on a server that takes 0.3 s for each
    monkeypatch.setattr(mail, "HOLD", timedelta(seconds=2))
    notes = logged_invoice_mails(10)

    def sender():
        try:
            mail.send_many([n.pk for n in notes])
        finally:
            connection.close()

    with mail_server(settings, delay=0.3) as (sink, _):
        # when beat runs the drain job over and over while the sender works (longer than its first hold)
        thread = threading.Thread(target=sender)
        thread.start()
        deadline = time.monotonic() + 30
        while not sink.messages and time.monotonic() < deadline:  # the sender has taken them
            time.sleep(0.01)
        runs = 0
        while thread.is_alive():
            run_job("notifications.retry_mail")
            runs += 1
            thread.join(timeout=0.1)

    # then the sender renewed its hold: every message went out once, from the sender, with one EmailSent each
    assert runs > 10
    assert sorted(m["Message-ID"] for _, m in sink.messages) == sorted(n.message_id for n in notes)
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}
    assert StoredEvent.objects.filter(event_type="notifications.EmailSent").count() == 10


@pytest.mark.django_db
def test_an_smtp_hand_over_inside_an_open_transaction_is_refused(settings):
    # given a logged e-mail and a mail server
    [note] = logged_invoice_mails(1)
    with mail_server(settings) as (sink, _):
        # when code sends it from inside its own transaction, the check refuses before a byte goes out
        with pytest.raises(CallInsideTransaction, match="smtp.send"), transaction.atomic():
            mail.send_many([note.pk])
        assert sink.messages == []
        # and sent the right way, after commit, it goes out once
        assert mail.send_many([note.pk]) == 1
    assert [m["Message-ID"] for _, m in sink.messages] == [note.message_id]


@pytest.mark.django_db(transaction=True)
def test_the_marks_commit_asynchronously_and_the_connection_is_synchronous_again_after_the_batch(settings, monkeypatch):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    notes = logged_invoice_mails(3)
    seen = []
    original = marks.mark_sent

    def mark_and_look(note):
        original(note)
        seen.append(synchronous_commit())

    monkeypatch.setattr(marks, "mark_sent", mark_and_look)
    with mail_server(settings):
        assert mail.send_many([n.pk for n in notes]) == 3
    assert seen == ["off"] * 3  # each mark's commit did not wait for its WAL flush...
    assert synchronous_commit() == "on"  # ...and nothing after the batch inherits that
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_mid_batch_surfaces_its_own_error_and_the_next_batch_runs_on_a_new_one(settings, monkeypatch):
    import psycopg
    from django.db import OperationalError, connection

    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL backend")
    notes = logged_invoice_mails(2)
    original = marks.mark_sent
    killed = []

    def mark_after_losing_the_connection(note):
        if not killed:
            pid = connection.connection.info.backend_pid
            dsn = connection.connection.info.dsn  # a second session terminates this one's backend
            with psycopg.connect(dsn, autocommit=True, password=connection.settings_dict.get("PASSWORD")) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [pid])
            killed.append(pid)
        original(note)

    monkeypatch.setattr(marks, "mark_sent", mark_after_losing_the_connection)
    with mail_server(settings):
        with pytest.raises(OperationalError):  # the mark's own failure, not the setting's reset after it
            mail.send_many([n.pk for n in notes])
        monkeypatch.setattr(marks, "mark_sent", original)
        # nothing was marked; the rows stay held by the failed sender until its hold runs out, and then
        # go out again (the one the server took, twice — the documented cost — and the other once)
        assert not Notification.objects.filter(status="sent").exists()
        assert mail.send_many([n.pk for n in notes]) == 0
        later = timezone.now() + mail.HOLD + timedelta(seconds=1)
        assert mail.send_backlog([n.pk for n in notes], now=later).sent == 2
    assert synchronous_commit() == "on"

"""E-mail: logging what a reaction asks for, and handing messages to the mail server (the sending batch).

Templates and rendering are ``notifications.composition``; the per-message marks ``notifications.marks``.

The hand-over, and what a crash costs:

1. Intent. A handler logs each e-mail (a queued :class:`Notification`) in its own transaction — at most
   one per event and template, two queries per batch — and asks for it to be sent after that commit. A
   rolled-back handler sends nothing.
2. Take. The sender holds the rows it is about to send (``held_until``, a short commit per
   :data:`TAKE` rows), so no other sender — the drain job, a second worker — sends them meanwhile. It
   renews the hold while it works.
3. Hand over, then mark. Over one SMTP connection per batch, each message is handed over with no
   transaction open, and *its own small commit* right after the server took it marks it sent. So a
   crash re-sends at most the one message in flight (taken by the server, not yet marked); every other
   one is either marked sent or was never handed over. We chose a commit per message over a batched
   commit plus the stable Message-ID because a provider that does not deduplicate by Message-ID (most,
   and an SMTP relay never does) would deliver every unmarked message of the batch twice; one small
   UPDATE per message is cheap next to the SMTP round trips it follows. The Message-ID is still the log
   row's id, so a reader or provider can recognise that one resend. The marks commit asynchronously
   (:func:`notifications.marks.committed_asynchronously`): a crash of this process cannot lose one, only a crash of
   PostgreSQL itself in the following ~0.6 s could (those few messages would go out again).
4. Record. EmailSent for the batch's handed-over messages and the refusals (with their backoff) are
   written in one transaction per taken batch; a sender that dies before it leaves rows marked sent and
   still held, and the drain job records their EmailSent once the hold has run out.
5. Drain. ``notifications.retry_mail`` (beat, every few seconds) sends, batch after batch until none is
   due, whatever no live sender holds: mail queued by a process that died before sending, the rest of a
   crashed sender's batch (at once if it was never taken, after :data:`HOLD` if it was), and refused
   mail whose retry is due. Real time throughout: mail servers do not live on test clocks.

:func:`sharedkernel.outside.ensure_outside_transaction` is called before the connection opens and before
each message: SMTP inside a transaction is refused under tests and logged in production.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from notifications import events as ev
from notifications import marks
from notifications.composition import TEMPLATES, Blank, Email, render
from notifications.models import Notification, NotificationStatus, Suppression
from sharedkernel.aggregates import RecordedEvent
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.correlation import Cause, new_correlation_id
from sharedkernel.declarations import external_system
from sharedkernel.eventstore import append_batch
from sharedkernel.outside import CallInsideTransaction, ensure_outside_transaction

#: How long a sender holds the rows it took. It renews the hold halfway; should it die, the drain job
#: sends what it held this long after (the rest of its batch, never taken, at once).
HOLD = timedelta(minutes=1)
#: Rows taken (and their EmailSent recorded) at a time: a dead sender leaves at most these held.
TAKE = 100
#: Tries per message (the server refused, or the sender died holding it), then it stays failed for staff.
MAX_ATTEMPTS = 5
UNSENT = [NotificationStatus.QUEUED, NotificationStatus.FAILED]


def queue(
    *,
    template: str,
    email: str,
    customer_id,
    cause_event_id,
    cause_event_type: str,
    context: dict,
    essential_only: bool,
    test_clock_id=None,
    at=None,
) -> Notification | None:
    """Log one e-mail for the event that caused it; returns None when it was queued before."""
    queued = queue_many(
        [
            dict(
                template=template,
                email=email,
                customer_id=customer_id,
                cause_event_id=cause_event_id,
                cause_event_type=cause_event_type,
                context=context,
                essential_only=essential_only,
                test_clock_id=test_clock_id,
                at=at,
            )
        ]
    )
    return queued[0] if queued else None


def queue_many(items: list[dict]) -> list[Notification]:
    """Log e-mails for a batch of events (a bill run's invoices) in two queries; send them after commit
    over one connection (see the module docstring). An (event, template) logged before is skipped."""
    if not items:
        return []
    seen = set(
        Notification.objects.filter(cause_event_id__in=[i["cause_event_id"] for i in items]).values_list(
            "cause_event_id", "template"
        )
    )
    suppressed = {
        e.lower()
        for e in Suppression.objects.filter(email__in=[i["email"] for i in items]).values_list("email", flat=True)
    }
    now = timezone.now()
    notes = []
    for item in items:
        key = (uuid.UUID(str(item["cause_event_id"])), item["template"])
        if key in seen:
            continue
        seen.add(key)
        spec = TEMPLATES[item["template"]]
        status, reason = NotificationStatus.QUEUED, ""
        if not spec.essential and item["essential_only"]:
            status, reason = NotificationStatus.SUPPRESSED, "The customer receives essential mail only."
        elif not spec.essential and item["email"].lower() in suppressed:
            status, reason = NotificationStatus.SUPPRESSED, "The address bounced before."
        notes.append(
            Notification(
                customer_id=item["customer_id"],
                email=item["email"],
                template=item["template"],
                essential=spec.essential,
                cause_event_id=item["cause_event_id"],
                cause_event_type=item["cause_event_type"],
                context=item["context"],
                subject=spec.subject.format_map(Blank(item["context"])),
                status=status,
                error=reason,
                created_at=item.get("at") or now,
                test_clock_id=item.get("test_clock_id"),
            )
        )
    insert_rows(notes)
    to_send = [n.pk for n in notes if n.status == NotificationStatus.QUEUED]
    if to_send:
        transaction.on_commit(partial(send_many, to_send))
    return notes


@external_system(
    "Mail server (SMTP)", context="notifications", description="Takes the logged e-mails (Django's e-mail backend)."
)
def send_many(ids, *, now: datetime | None = None) -> int:
    """Hand logged e-mails to the mail server over one connection; returns how many it took. Called with
    no transaction open (after the handler's commit, or by the drain job); see the module docstring."""
    return _send(list(ids), now or timezone.now()).sent


@dataclass
class Outcome:
    taken: int = 0  #: rows this sender held (the others: sent, held by another sender, or not due)
    sent: int = 0


def send_backlog(ids, *, now: datetime) -> Outcome:
    """:func:`send_many` for the drain job, which also needs to know whether it got any of them."""
    return _send(list(ids), now)


class _Clock:
    """Real time from ``start`` on, measured with the monotonic clock (``start`` may be a job's ``now``)."""

    def __init__(self, start: datetime):
        self.start, self.began = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.began)


def _send(ids: list, start: datetime) -> Outcome:
    clock, outcome = _Clock(start), Outcome()
    connection, broken = None, None
    try:
        for first in range(0, len(ids), TAKE):
            notes = _take(ids[first : first + TAKE], clock.now())
            if not notes:
                continue
            outcome.taken += len(notes)
            if connection is None and broken is None:
                connection = get_connection()
                try:
                    ensure_outside_transaction("smtp.send")
                    connection.open()
                except CallInsideTransaction:
                    raise
                except Exception as exc:  # the server is down: every message of the batch waits for a retry
                    broken = _error(exc)
            if broken is not None:
                _record(clock.now(), notes[0].held_until, handed=[], refused=[(note, broken) for note in notes])
                continue
            outcome.sent += _hand_over(notes, connection, clock)
    finally:
        if connection is not None:
            connection.close()
    return outcome


def _take(ids: list, now: datetime) -> list[Notification]:
    """Hold the still unsent, untried-or-due, unheld ones of ``ids`` for this sender (a short commit)."""
    with transaction.atomic():
        notes = list(
            Notification.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, status__in=UNSENT, attempts__lt=MAX_ATTEMPTS)
            .filter(Q(held_until__isnull=True) | Q(held_until__lte=now))
            .order_by("created_at", "pk")
        )
        if notes:
            hold = now + HOLD
            Notification.objects.filter(pk__in=[n.pk for n in notes]).update(
                held_until=hold, attempts=F("attempts") + 1
            )
            for note in notes:
                note.held_until, note.attempts = hold, note.attempts + 1
    return notes


def _renew(pks: list, old: datetime, now: datetime) -> tuple[datetime, set]:
    """Extend this sender's hold on its rows (the unsent and the sent whose EmailSent it owes) before it
    runs out; returns the new hold and the rows still held (one whose hold ran out may have been taken
    over by the drain job, and is that job's now)."""
    hold = now + HOLD
    Notification.objects.filter(pk__in=pks, held_until=old).update(held_until=hold)
    return hold, set(Notification.objects.filter(pk__in=pks, held_until=hold).values_list("pk", flat=True))


def _hand_over(notes: list[Notification], connection, clock: _Clock) -> int:
    """Send each note and record its hand-over in its own commit at once, so a crash re-sends at most the
    message in flight; then EmailSent for the batch and the refusals in one transaction."""
    handed: list[tuple[Notification, str]] = []
    refused: list[tuple[Notification, str]] = []
    hold, pks = notes[0].held_until, [n.pk for n in notes]
    renew_at = time.monotonic() + HOLD.total_seconds() / 2
    remaining = list(notes)
    with marks.committed_asynchronously():
        while remaining:
            if time.monotonic() >= renew_at:
                hold, kept = _renew(pks, hold, clock.now())
                renew_at = time.monotonic() + HOLD.total_seconds() / 2
                remaining = [n for n in remaining if n.pk in kept]
                handed = [(n, subject) for n, subject in handed if n.pk in kept]
                refused = [(n, error) for n, error in refused if n.pk in kept]
                if not remaining:
                    break
            note = remaining.pop(0)
            try:
                subject, text, html = render(note.template, note.context)
                message = Email(
                    subject,
                    text,
                    settings.DEFAULT_FROM_EMAIL,
                    [note.email],
                    headers={"Message-ID": note.message_id, "X-SubscriptionHub-Template": note.template},
                    connection=connection,
                )
                message.attach_alternative(html, "text/html")
                ensure_outside_transaction("smtp.send")
                message.send()
            except CallInsideTransaction:
                raise
            except Exception as exc:
                refused.append((note, _error(exc)))
                continue
            note.status, note.error, note.sent_at = NotificationStatus.SENT, "", timezone.now()
            # its own commit, right after the server took it: the one durable mark of the hand-over
            marks.mark_sent(note)
            handed.append((note, subject))
    _record(clock.now(), hold, handed=handed, refused=refused)
    return len(handed)


def _record(
    now: datetime, hold: datetime, *, handed: list[tuple[Notification, str]], refused: list[tuple[Notification, str]]
) -> None:
    """EmailSent for the handed-over notes (their hold released), the refused ones failed with their backoff —
    for the rows this sender still holds (a hold that ran out is the drain job's to finish)."""
    with transaction.atomic():
        pks = [n.pk for n, _ in handed] + [n.pk for n, _ in refused]
        mine = set(
            Notification.objects.select_for_update()
            .filter(pk__in=pks, held_until=hold)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        handed = [(n, subject) for n, subject in handed if n.pk in mine]
        refused = [(n, error) for n, error in refused if n.pk in mine]
        if handed:
            Notification.objects.filter(pk__in=[n.pk for n, _ in handed]).update(held_until=None)
            append_batch([_email_sent(note, subject) for note, subject in handed])
        for note, error in refused:
            note.status, note.error = NotificationStatus.FAILED, error
            note.held_until = now + retry_delay(note.attempts) if note.attempts < MAX_ATTEMPTS else None
        bulk_update_rows([n for n, _ in refused], ["status", "error", "held_until"])


def record_owed_sent_events(now: datetime) -> int:
    """EmailSent for messages a sender handed over and marked sent, but died before recording the event."""
    with transaction.atomic():
        notes = list(
            Notification.objects.select_for_update(skip_locked=True).filter(
                status=NotificationStatus.SENT, held_until__lte=now
            )[: TAKE * 10]
        )
        if notes:
            Notification.objects.filter(pk__in=[n.pk for n in notes]).update(held_until=None)
            append_batch([_email_sent(note, note.subject) for note in notes])
    return len(notes)


def _email_sent(note: Notification, subject: str) -> tuple[Cause, list[RecordedEvent]]:
    clock = str(note.test_clock_id) if note.test_clock_id else None
    return (
        Cause(new_correlation_id(), str(note.cause_event_id), clock),
        [
            RecordedEvent(
                ev.EmailSent(
                    notification_id=str(note.pk),
                    customer_id=str(note.customer_id) if note.customer_id else None,
                    email=note.email,
                    template=note.template,
                    cause_event_id=str(note.cause_event_id),
                    subject=subject,
                ),
                note.sent_at,
                "Notification",
                str(note.pk),
                1,
                clock,
            )
        ],
    )


def retry_delay(attempts: int) -> timedelta:
    """Wait after the n-th refusal: 1, 2, 4, 8 minutes."""
    return timedelta(minutes=2 ** max(0, attempts - 1))


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]

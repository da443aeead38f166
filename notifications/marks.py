"""The durable mark of each hand-over to the mail server (step 3 of ``notifications.mail``).

One small commit per message, right after the server took it, written as cheaply as PostgreSQL allows.
"""

from __future__ import annotations

import contextlib

from django.db import DatabaseError, transaction

from notifications.models import Notification
from sharedkernel.bulk import bound_cursor


@contextlib.contextmanager
def committed_asynchronously():
    """The per-message marks commit without waiting for their WAL flush (``synchronous_commit = off``).

    A mark is visible to every other session the moment it commits and survives any crash of this
    process, so a killed sender still re-sends at most the message in flight. Only a crash of the
    PostgreSQL server itself within the next ~0.6 s (three ``wal_writer_delay``) could lose a few marks:
    those messages are sent again, none is lost — and the batch's EmailSent commit right after is
    synchronous, which flushes the WAL of every mark before it. A mark takes 0.16 ms instead of 0.56 ms
    on the bench machine (docs/BENCHMARKS.md, "Bill run")."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        except DatabaseError:  # the connection broke mid-batch: it is discarded, and its setting with it
            connection.close()


def mark_sent(note: Notification) -> None:
    """The durable mark of one hand-over: a single UPDATE in autocommit (no transaction is open here).

    It runs once per message, so on PostgreSQL it is one fixed statement with its parameters bound
    apart (no queryset to build and compile, nothing quoted into the SQL text): a third cheaper than
    ``QuerySet.update``, the same commit per message."""
    connection = transaction.get_connection()
    if connection.vendor != "postgresql":
        Notification.objects.filter(pk=note.pk).update(status=note.status, error="", sent_at=note.sent_at)
        return
    with bound_cursor(connection) as cursor:
        cursor.execute(_MARK_SENT, [str(note.status), note.sent_at, note.pk])


_MARK_SENT = f"UPDATE {Notification._meta.db_table} SET status = %b, error = '', sent_at = %b WHERE id = %b"

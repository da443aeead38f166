"""Calls to systems outside the database happen outside a database transaction.

A payment gateway, a tax API, an SMTP server or a webhook receiver can take
seconds to answer. Called inside a transaction, that call holds row locks (and
SQLite's one write lock) for as long, and a rollback after the call succeeded
loses the record of what the outside world now knows (a charge made, a message
handed over). The rule is therefore: record the intent and commit, call out,
record the result in a new transaction; a crash in between is resolved from the
outside system's idempotent answer.

Every adapter that talks to the outside calls :func:`ensure_outside_transaction`
first. It raises :class:`CallInsideTransaction` (``OUTSIDE_TRANSACTION_CHECK =
"raise"``, the default under tests and DEBUG) or logs an error (``"log"``, the
production default, so a missed path is seen without failing a bill run).

A test's own wrapping transaction (pytest-django's ``db`` fixture, Django's
``TestCase``) does not count: only transactions the code itself opened do. So
the check holds in every test, not only in ``transaction=True`` ones.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


class CallInsideTransaction(RuntimeError):
    """A network call was about to be made while a database transaction is open."""


def open_transaction(using: str | None = None) -> bool:
    """Is a transaction open that the code (not a test case's wrapper) started?"""
    aliases = [using] if using else list(connections)
    for alias in aliases:
        if alias not in connections.settings:
            continue
        connection = connections[alias]
        if not connection.in_atomic_block:
            continue
        blocks = connection.atomic_blocks
        # no blocks at all: autocommit was turned off by hand, which is the code's own doing too
        if not blocks or any(not getattr(block, "_from_testcase", False) for block in blocks):
            return True
    return False


def ensure_outside_transaction(what: str) -> None:
    """Call first in every adapter that reaches the outside world (``what`` names the call)."""
    if not open_transaction():
        return
    message = f"{what} was called inside an open database transaction; record, commit, then call."
    if getattr(settings, "OUTSIDE_TRANSACTION_CHECK", "raise") == "raise":
        raise CallInsideTransaction(message)
    logger.error(message)

"""Explicit waiting for an upstream fact: a handler says what it needs, and its delivery waits for it.

Events from different aggregates and contexts arrive in no promised order: the first invoice of a
subscription may be handled before the customer's billing account exists, a usage total before the
renewal invoice it belongs on. Such a race is normal, not a failure. The handler calls
:func:`wait_for` for the event it cannot act on yet, leaves it without effect, and goes on with the
rest of its batch; when its transaction commits, that delivery is WAITING (no error logged, no
attempt counted) with the need written in ``waiting_for`` for staff to read.

The code that makes the fact exist calls :func:`arrived` with the same words (one function next to
the fact builds them, for both sides); after its commit the waiting deliveries run at once. Without
it a waiting delivery is re-checked on a growing delay (1 s doubling to a minute), and one that has
waited ``OUTBOX_WAIT_LIMIT_SECONDS`` is FAILED with what it waited for.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sharedkernel.events import DomainEvent
from sharedkernel.models import DeliveryStatus, EventDelivery
from sharedkernel.sending import send_grouped

logger = logging.getLogger(__name__)

#: The longest ``waiting_for`` text (the column's size).
NEEDS_LENGTH = 200
#: The longest pause between two checks of a fact that has not arrived.
LONGEST_RECHECK = timedelta(minutes=1)

#: While a handler runs: what it waits for → the ids of the events that wait for it.
_waits: ContextVar[dict[str, list[str]] | None] = ContextVar("sharedkernel_waits", default=None)


def wait_for(event: DomainEvent | str, needs: str) -> None:
    """In a handler: ``event`` (or its event id) waits until ``needs`` exists; handle it then.

    The handler must leave the event without effect. Outside a handler this is a programming
    error: a command called by a client reports a missing fact as a :class:`DomainError` instead."""
    pending = _waits.get()
    if pending is None:
        raise RuntimeError("wait_for() is for event handlers; a command refuses with a DomainError instead.")
    event_id = event.event_id if isinstance(event, DomainEvent) else str(event)
    pending.setdefault(needs[:NEEDS_LENGTH], []).append(event_id)


def arrived(needs: str | Iterable[str]) -> int:
    """The fact(s) ``needs`` names exist now: call it in the transaction that makes them. After that
    commit the deliveries waiting for them are sent to the workers; returns how many there are."""
    wanted = [needs] if isinstance(needs, str) else list(needs)
    if not wanted:
        return 0
    due = EventDelivery.objects.filter(
        status=DeliveryStatus.WAITING, waiting_for__in=[n[:NEEDS_LENGTH] for n in wanted]
    )
    rows = list(due.values_list("handler", "pk"))
    if rows:
        EventDelivery.objects.filter(pk__in=[pk for _, pk in rows]).update(dispatch_after=timezone.now())
        transaction.on_commit(lambda: send_grouped(rows))
    return len(rows)


@contextlib.contextmanager
def collecting_waits() -> Iterator[None]:
    """The scope of one handler run: :func:`wait_for` collects here until :func:`hold_waiting`."""
    token = _waits.set({})
    try:
        yield
    finally:
        _waits.reset(token)


def recheck_delay(waited: timedelta) -> timedelta:
    """About as long again as it has waited: 1 s, 2 s, 4 s ... up to :data:`LONGEST_RECHECK`."""
    seconds = max(1, min(int(waited.total_seconds()), int(LONGEST_RECHECK.total_seconds())))
    return timedelta(seconds=seconds)


def hold_waiting(handler_name: str) -> int:
    """After a handler ran, inside its transaction: the deliveries it claimed for events that wait
    become WAITING (the claim's attempt is not counted), due again after :func:`recheck_delay`; one
    that waited past ``OUTBOX_WAIT_LIMIT_SECONDS`` becomes FAILED, saying what never came. Returns
    how many wait."""
    pending = _waits.get()
    if not pending:
        return 0
    now = timezone.now()
    limit = timedelta(seconds=settings.OUTBOX_WAIT_LIMIT_SECONDS)
    waiting = 0
    for needs, event_ids in pending.items():
        rows = EventDelivery.objects.filter(handler=handler_name, event__event_id__in=event_ids)
        by_delay: dict[timedelta, list[int]] = defaultdict(list)
        expired: list[int] = []
        for pk, created_at in rows.values_list("pk", "created_at"):
            waited = now - created_at
            (expired if waited > limit else by_delay[recheck_delay(waited)]).append(pk)
        for delay, ids in by_delay.items():
            waiting += EventDelivery.objects.filter(pk__in=ids).update(
                status=DeliveryStatus.WAITING,
                waiting_for=needs,
                dispatch_after=now + delay,
                completed_at=None,
                attempts=F("attempts") - 1,
            )
        if expired:
            EventDelivery.objects.filter(pk__in=expired).update(
                status=DeliveryStatus.FAILED,
                waiting_for=needs,
                last_error=f"Waited {limit} for: {needs}. It never arrived; retry once it exists.",
            )
            logger.error(
                "%s: %d delivery(ies) waited %s for %s; marked failed.", handler_name, len(expired), limit, needs
            )
        logger.info("%s waits for %s (%d event(s)).", handler_name, needs, len(event_ids))
    pending.clear()
    return waiting

"""Running a handler on its deliveries: claim, handle, commit — the ledger entry and the effect in one
transaction (contract steps 3 and 4 of :mod:`sharedkernel.bus`).

A handler that raises is rolled back and retried with backoff, then FAILED; one that waits for an
upstream fact (:mod:`sharedkernel.waiting`) leaves its delivery WAITING; a replay under way
(:mod:`sharedkernel.fence`) defers it; a handler this code does not know fails it with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sharedkernel.bulk import bound_cursor
from sharedkernel.correlation import caused_by
from sharedkernel.declarations import running
from sharedkernel.events import DomainEvent
from sharedkernel.eventstore import cause_of, events_at
from sharedkernel.fence import defer_for_replay, replay_fenced
from sharedkernel.handlers import HANDLERS, HandlerSpec
from sharedkernel.models import OPEN_STATUSES, DeliveryStatus, EventDelivery
from sharedkernel.sending import send
from sharedkernel.waiting import collecting_waits, hold_waiting

logger = logging.getLogger(__name__)

_in_handler: ContextVar[bool] = ContextVar("sharedkernel_in_handler", default=False)
_after_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar("sharedkernel_after_commit", default=None)


def in_handler_transaction() -> bool:
    return _in_handler.get()


def after_commit(fn: Callable[[], None]) -> None:
    """Run ``fn`` once the handler's transaction has committed, in this process, with no transaction
    open — where a handler's outside calls go (the intent they act on committed first). Dropped when the
    transaction rolls back. An error is logged, not raised: the delivery is done, and whoever recorded the
    intent must find it again (a beat job). Outside a handler it is ``transaction.on_commit``."""
    pending = _after_commit.get()
    if pending is None:
        transaction.on_commit(fn)
    else:
        pending.append(fn)


@contextlib.contextmanager
def handler_transaction() -> Iterator[None]:
    """The transaction a handler's effect and its ledger entry share; then its :func:`after_commit` work."""
    token = _in_handler.set(True)
    pending: list[Callable[[], None]] = []
    later = _after_commit.set(pending)
    try:
        # No command runs until the handler calls one — nor in its on-commit callbacks (hence outside).
        with running(None), collecting_waits(), transaction.atomic(durable=True):
            yield
    finally:
        _in_handler.reset(token)
        _after_commit.reset(later)
    with running(None):  # the handler's own work, not that of a command whose commit ran the handler
        for fn in pending:  # reached only after a commit
            try:
                fn()
            except Exception:
                logger.exception("Work after a handler's commit failed; its intent stays recorded for the resolver.")


def _claim(ids: Sequence[int], *, wait: bool = False) -> list[DomainEvent]:
    """Mark the still-open deliveries done (inside the handler transaction) and load their events.
    Rows another worker holds are skipped: that worker runs them. With ``wait`` (a client's request,
    step 6) the claim waits for that worker's commit instead, and then finds them done."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":  # one statement: lock, mark and return (the hot path)
        table = EventDelivery._meta.db_table
        lock = "FOR UPDATE" if wait else "FOR UPDATE SKIP LOCKED"
        with bound_cursor(connection) as cursor:
            cursor.execute(
                f"WITH open AS (SELECT id FROM {table} WHERE id = ANY(%b::int8[]) AND status = ANY(%b::varchar[]) "
                f"{lock}) UPDATE {table} AS d SET status = %b, completed_at = %b, "
                "attempts = d.attempts + 1 FROM open WHERE d.id = open.id RETURNING d.event_id",
                [list(ids), [str(s) for s in OPEN_STATUSES], str(DeliveryStatus.DONE), timezone.now()],
            )
            positions = [position for (position,) in cursor.fetchall()]
        return events_at(positions) if positions else []
    rows = list(
        EventDelivery.objects.select_for_update(skip_locked=not wait)
        .filter(pk__in=ids, status__in=OPEN_STATUSES)
        .values_list("pk", "event_id")
    )
    if not rows:
        return []
    EventDelivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(
        status=DeliveryStatus.DONE, completed_at=timezone.now(), attempts=F("attempts") + 1
    )
    return events_at(event_id for _, event_id in rows)


def run_deliveries(handler_name: str, delivery_ids: Sequence[int], *, wait: bool = False) -> int:
    """Run ``handler_name`` for the given deliveries; returns how many were handled.
    ``wait``: a delivery another worker holds is waited for, not skipped (see :func:`_claim`)."""
    spec = HANDLERS.get(handler_name)
    if spec is None:
        fail_unknown_handler(handler_name, delivery_ids)
        return 0
    ids = sorted(set(delivery_ids))
    if replay_fenced(handler_name):
        defer_for_replay(handler_name, ids)
        return 0
    if spec.batch and len(ids) > 1:
        try:
            with handler_transaction():
                events = _claim(ids, wait=wait)
                if events:
                    spec.handle(events)
                    hold_waiting(spec.name)
            return len(events)
        except Exception:
            logger.warning("Batch of %d for %s failed; isolating the failing event.", len(ids), handler_name)
    handled = 0
    for delivery_id in ids:
        handled += _run_one(spec, delivery_id, wait=wait)
    return handled


def _run_one(spec: HandlerSpec, delivery_id: int, *, wait: bool = False) -> int:
    try:
        with handler_transaction():
            events = _claim([delivery_id], wait=wait)
            if events:
                with caused_by(cause_of(events[0])):
                    spec.handle(events)
                hold_waiting(spec.name)
        return len(events)
    except Exception as exc:
        logger.exception("Handler %s failed on delivery %s", spec.name, delivery_id)
        _record_failure(spec, delivery_id, exc)
        return 0


def fail_unknown_handler(handler_name: str, delivery_ids: Sequence[int]) -> int:
    """Mark the open deliveries of a handler this code does not register FAILED, with the reason.

    A renamed or removed handler leaves its open rows behind; re-relaying them every
    ``OUTBOX_REDISPATCH_AFTER`` would go on forever. FAILED rows show in the admin with the error,
    and staff can retry them (after deploying the handler) or delete them. Returns how many."""
    error = f"No handler named {handler_name} is registered (renamed or removed?); the delivery cannot run."
    failed = EventDelivery.objects.filter(
        pk__in=list(delivery_ids), handler=handler_name, status__in=OPEN_STATUSES
    ).update(status=DeliveryStatus.FAILED, last_error=error, attempts=F("attempts") + 1)
    if failed:
        logger.error("%s Marked %d delivery(ies) failed.", error, failed)
    return failed


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after the n-th failed attempt, capped at an hour."""
    return timedelta(seconds=min(3600, settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)))


def _record_failure(spec: HandlerSpec, delivery_id: int, exc: BaseException) -> None:
    error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
    with transaction.atomic():
        delivery = EventDelivery.objects.select_for_update().filter(pk=delivery_id, status__in=OPEN_STATUSES).first()
        if delivery is None:
            return
        delivery.attempts += 1
        delivery.last_error = error
        delay = retry_delay(delivery.attempts)
        if delivery.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.status = DeliveryStatus.RETRYING
            delivery.dispatch_after = timezone.now() + delay
        delivery.save(update_fields=["attempts", "last_error", "status", "dispatch_after"])
    if delivery.status == DeliveryStatus.RETRYING and settings.EVENT_DISPATCH == "celery":
        send(spec.name, [delivery_id], countdown=delay.total_seconds())

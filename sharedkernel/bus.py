"""Delivery of committed events to the policies and projections that react to them.

The contract, end to end:

1. A command appends events in its own transaction (:mod:`sharedkernel.eventstore`),
   which also writes one :class:`EventDelivery` row per subscribed handler.
2. After commit, ``events_committed`` hands the delivery ids to
   :func:`dispatch_committed`, which enqueues Celery tasks, grouped by handler
   and chunked (a bill run is not one task per event).
3. A worker runs :func:`run_deliveries`: in one transaction it claims the open
   delivery rows (marking them done), runs the handler, and commits — so the
   handler's effect and its ledger entry commit together, and a duplicate
   delivery finds nothing left to claim. Handlers must therefore keep all their
   effects in the database transaction. A call to the outside (a payment
   gateway, a tax API) never happens inside it: the handler records the intent
   and hands the call to :func:`after_commit`, which runs it in the same worker
   once the transaction has committed (and never if it rolled back); the
   handler's context owns finding intents a crash left behind.
4. A failing handler is rolled back; its delivery is retried with exponential
   backoff, and after ``OUTBOX_MAX_ATTEMPTS`` it is marked failed with the error
   for staff to inspect and retry in the admin. A handler that needs an upstream
   fact not there yet does not fail: it calls :func:`wait_for`, and the delivery
   waits until the fact's maker calls :func:`arrived` (:mod:`sharedkernel.waiting`).
5. :func:`relay` (beat, every few seconds) re-dispatches deliveries that are
   still open past their ``dispatch_after``: the broker was down at commit, the
   worker died, or a retry is due. Nothing is lost; at worst it runs twice and
   the ledger makes the second run a no-op.
6. Read your writes: a handler declared ``read_your_writes=True`` builds what a
   client reads next (Billing's account for a new customer, a new
   subscription's first invoice). When a client's request commits events, the
   request itself runs those deliveries, in process, before it answers
   (:func:`serving_a_client`, set by ``ReadYourWritesMiddleware``); if a worker
   already holds one, the request waits for that worker's commit instead of
   skipping it. Everything else goes to the workers as in step 2. See
   docs/consistency.md for the promise this makes to API clients.

Where each part lives: the registry of handlers in :mod:`sharedkernel.handlers`, running them in
:mod:`sharedkernel.delivery`, waiting for upstream facts in :mod:`sharedkernel.waiting`, the replay
fence in :mod:`sharedkernel.fence`, sending to workers in :mod:`sharedkernel.sending`; this module
hands committed deliveries out, relays, drains and keeps the outbox tidy, and is the face contexts
import (``reacts_to``, ``LARGE_BATCH``, ``after_commit``, ``wait_for``, ``arrived``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from sharedkernel.declarations import running
from sharedkernel.delivery import (
    after_commit,
    fail_unknown_handler,
    handler_transaction,
    in_handler_transaction,
    retry_delay,
    run_deliveries,
)
from sharedkernel.fence import replay_fence, replay_fenced
from sharedkernel.handlers import HANDLERS, LARGE_BATCH, HandlerSpec, deliveries_for, reacts_to, subscribers_for
from sharedkernel.models import OPEN_STATUSES, DeliveryStatus, EventDelivery, Heartbeat
from sharedkernel.sending import chunks, group_by_handler, send_grouped
from sharedkernel.signals import events_committed
from sharedkernel.waiting import arrived, wait_for

__all__ = [
    "HANDLERS",
    "LARGE_BATCH",
    "DeliveriesFailed",
    "DeliveriesWaiting",
    "HandlerSpec",
    "after_commit",
    "arrived",
    "deliveries_for",
    "dispatch_committed",
    "drain",
    "fail_unknown_handler",
    "handler_transaction",
    "in_handler_transaction",
    "prune_done",
    "raise_if_failed",
    "reacts_to",
    "relay",
    "replay_fence",
    "replay_fenced",
    "retry_delay",
    "retry_failed",
    "retry_now",
    "run_deliveries",
    "send_grouped",
    "serving_a_client",
    "subscribers_for",
    "wait_for",
]

logger = logging.getLogger(__name__)

_serving: ContextVar[bool] = ContextVar("sharedkernel_serving_a_client", default=False)


@contextlib.contextmanager
def serving_a_client() -> Iterator[None]:
    """While a client's request runs: its commits run the read-your-writes handlers in process."""
    token = _serving.set(True)
    try:
        yield
    finally:
        _serving.reset(token)


def _read_your_writes(deliveries: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The deliveries this process runs before its client gets an answer (contract step 6)."""
    if not _serving.get() or settings.EVENT_DISPATCH != "celery" or in_handler_transaction():
        return []
    return [(name, pk) for name, pk in deliveries if (spec := HANDLERS.get(name)) and spec.read_your_writes]


#: monotonic time until which dispatch after commit does not try the broker (it failed just now).
_broker_down_until = [0.0]


@receiver(events_committed, dispatch_uid="sharedkernel.dispatch_committed")
def dispatch_committed(sender, deliveries: list[tuple[str, int]], **kwargs) -> None:
    """Hand committed deliveries to workers — but run the client's read-your-writes handlers here
    (they need no broker). If the broker is unreachable the other deliveries stay open and become
    due for the relay at once.

    A failed publish costs about a second (Celery's publish retries); so that every request does
    not pay it during an outage, for ``OUTBOX_BROKER_RETRY_SECONDS`` after a failure this process
    leaves its deliveries to the relay without trying (one warning per outage)."""
    here = _read_your_writes(deliveries)
    mine = {pk for _, pk in here}
    _send_or_leave_for_relay([(name, pk) for name, pk in deliveries if pk not in mine])
    with running(None):  # a commit inside a command's step runs these: they are not that command's
        for handler_name, ids in group_by_handler(here).items():
            # A failure is recorded and retried by the workers as usual (step 4); a crash right here
            # leaves the deliveries to the relay.
            run_deliveries(handler_name, ids, wait=True)


def _send_or_leave_for_relay(deliveries: list[tuple[str, int]]) -> None:
    if time.monotonic() < _broker_down_until[0]:
        _leave_for_relay(deliveries)
        return
    try:
        send_grouped(deliveries)
    except Exception as exc:  # broker down: the relay is the other path
        if not _broker_down_until[0]:
            logger.warning("Could not dispatch %d deliveries (%s); the relay will.", len(deliveries), exc)
        _broker_down_until[0] = time.monotonic() + settings.OUTBOX_BROKER_RETRY_SECONDS
        _leave_for_relay(deliveries)
        return
    if _broker_down_until[0]:
        logger.warning("The broker takes deliveries again.")
        _broker_down_until[0] = 0.0


def _leave_for_relay(deliveries: list[tuple[str, int]]) -> None:
    EventDelivery.objects.filter(pk__in=[pk for _, pk in deliveries], status__in=OPEN_STATUSES).update(
        dispatch_after=timezone.now()
    )


def relay(*, limit: int = 5000, test_clock_id: str | None = None) -> int:
    """Re-dispatch open deliveries whose ``dispatch_after`` has passed."""
    now = timezone.now()
    with transaction.atomic():
        due = EventDelivery.objects.select_for_update(skip_locked=True).filter(
            status__in=OPEN_STATUSES, dispatch_after__lte=now
        )
        if test_clock_id:
            due = due.filter(test_clock_id=test_clock_id)
        rows = list(due.order_by("pk").values_list("handler", "pk")[:limit])
        if not rows:
            return 0
        EventDelivery.objects.filter(pk__in=[pk for _, pk in rows]).update(
            dispatch_after=now + settings.OUTBOX_REDISPATCH_AFTER
        )
        if settings.EVENT_DISPATCH == "celery":
            send_grouped(rows)  # inside the transaction: a broker error rolls the bump back
    if settings.EVENT_DISPATCH != "celery":
        for handler_name, ids in group_by_handler(rows).items():
            run_deliveries(handler_name, ids)
    logger.info("Relayed %d open deliveries.", len(rows))
    return len(rows)


class DeliveriesFailed(RuntimeError):
    """Deliveries ended FAILED (attempts exhausted): a handler is broken, and waiting on the flow
    to settle must say so rather than end quietly. ``failures`` is (delivery id, handler, error)."""

    def __init__(self, failures: Sequence[tuple[int, str, str]], more: int = 0):
        self.failures = list(failures)
        lines = [f"delivery {pk} to {handler}: {_last_line(error)}" for pk, handler, error in failures]
        if more:
            lines.append(f"... and {more} more")
        super().__init__(f"{len(failures) + more} event deliveries ended failed:\n" + "\n".join(lines))


class DeliveriesWaiting(RuntimeError):
    """Only deliveries waiting for an upstream fact are left, and nothing more will bring it:
    ``waiting`` is (delivery id, handler, what it waits for)."""

    def __init__(self, waiting: Sequence[tuple[int, str, str]], total: int):
        self.waiting = list(waiting)
        lines = [f"delivery {pk} to {handler} waits for {needs}" for pk, handler, needs in waiting]
        super().__init__(f"{total} event deliveries wait for facts that never came:\n" + "\n".join(lines))


def _last_line(error: str) -> str:
    lines = error.strip().splitlines()
    return lines[-1] if lines else "no error recorded"


def raise_if_failed(*, test_clock_id: str | None = None) -> None:
    """Raise :class:`DeliveriesFailed` when a delivery (of this test clock, if given) ended FAILED.

    A test that expects a failure asserts it and then takes the failed rows away (or retries them)."""
    query = EventDelivery.objects.filter(status=DeliveryStatus.FAILED)
    if test_clock_id:
        query = query.filter(test_clock_id=test_clock_id)
    failures = list(query.order_by("pk").values_list("pk", "handler", "last_error")[:10])
    if failures:
        raise DeliveriesFailed(failures, more=max(0, query.count() - len(failures)))


def drain(*, test_clock_id: str | None = None, max_rounds: int = 10_000) -> int:
    """Run every open delivery in this process until none is left (tests, demo data).

    Handlers that keep failing end up failed after their attempts; that ends
    the loop too, and then :class:`DeliveriesFailed` is raised naming them.
    Waiting deliveries are run again while other work goes on (it may bring
    what they wait for); when only they are left and a last round brought
    nothing, :class:`DeliveriesWaiting` says what never came.
    """
    total = 0
    stalled = False
    for _ in range(max_rounds):
        query = EventDelivery.objects.filter(status__in=OPEN_STATUSES)
        if test_clock_id:
            query = query.filter(test_clock_id=test_clock_id)
        rows = list(query.order_by("pk").values_list("handler", "pk", "status", "waiting_for")[:2000])
        if not rows:
            raise_if_failed(test_clock_id=test_clock_id)
            return total
        if all(status == DeliveryStatus.WAITING for _, _, status, _ in rows):
            if stalled:
                raise_if_failed(test_clock_id=test_clock_id)
                raise DeliveriesWaiting([(pk, handler, needs) for handler, pk, _, needs in rows[:10]], len(rows))
            stalled = True  # one more round: the last one may have brought what they wait for
        else:
            stalled = False
        for handler_name, ids in group_by_handler((handler, pk) for handler, pk, _, _ in rows).items():
            spec = HANDLERS.get(handler_name)
            for chunk in chunks(ids, spec.batch_size if spec else 200):
                total += run_deliveries(handler_name, chunk)
    raise RuntimeError("drain() did not finish: a handler keeps producing events.")


PRUNE_HEARTBEAT = "outbox_prune"


def prune_done(*, now=None, batch: int = 5000) -> int:
    """Delete DONE deliveries completed more than ``OUTBOX_DONE_RETENTION_DAYS`` ago, ``batch`` rows
    per statement (short transactions, on PostgreSQL and SQLite alike); returns how many.

    The ledger stays exact without them: a delivery is claimed only while its own row is open
    (:func:`_claim`), every message and relay names delivery ids, and rows are written only when an
    event is appended — so a redelivered message whose DONE row is gone claims nothing and applies
    nothing. Projections dedupe by stored position besides; ``replay_events`` never used the ledger.
    The last prune is kept as a :class:`Heartbeat` row for the admin."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OUTBOX_DONE_RETENTION_DAYS)
    old = EventDelivery.objects.filter(status=DeliveryStatus.DONE, completed_at__lt=cutoff)
    pruned = 0
    while True:
        ids = list(old.order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            break
        with transaction.atomic():
            pruned += EventDelivery.objects.filter(pk__in=ids, status=DeliveryStatus.DONE).delete()[0]
    Heartbeat.objects.update_or_create(name=PRUNE_HEARTBEAT, defaults={"beat_at": now})
    if pruned:
        logger.info("Pruned %d done deliveries completed before %s.", pruned, cutoff)
    return pruned


def retry_failed(delivery_ids: Iterable[int]) -> int:
    """Staff action: give failed deliveries a fresh set of attempts, now."""
    ids = list(delivery_ids)
    updated = EventDelivery.objects.filter(pk__in=ids, status=DeliveryStatus.FAILED).update(
        status=DeliveryStatus.RETRYING, attempts=0, dispatch_after=timezone.now()
    )
    transaction.on_commit(lambda: send_grouped(EventDelivery.objects.filter(pk__in=ids).values_list("handler", "pk")))
    return updated


def retry_now(delivery_ids: Iterable[int]) -> tuple[int, int]:
    """Staff, from the board or a timeline: failed deliveries get a fresh set of attempts and open ones
    are due at once; both are sent to the workers after commit (the relay picks them up otherwise).
    Returns (failed retried, open made due). Done rows are left alone."""
    ids = list(delivery_ids)
    failed = retry_failed(ids)  # sends every given id after commit; a done one claims nothing
    waiting = EventDelivery.objects.filter(pk__in=ids, status__in=OPEN_STATUSES).update(dispatch_after=timezone.now())
    return failed, waiting - failed

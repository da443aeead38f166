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
   for staff to inspect and retry in the admin.
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
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.dispatch import receiver
from django.utils import timezone

from sharedkernel.bulk import bound_cursor
from sharedkernel.correlation import caused_by
from sharedkernel.declarations import running
from sharedkernel.events import DomainEvent
from sharedkernel.eventstore import cause_of, events_at
from sharedkernel.models import OPEN_STATUSES, DeliveryStatus, EventDelivery, Heartbeat
from sharedkernel.signals import events_committed

logger = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[DomainEvent]], None]


@dataclass(frozen=True)
class HandlerSpec:
    """A subscription of one handler (policy or projection) to event types."""

    name: str
    patterns: tuple[str, ...]
    fn: Callable
    batch: bool = False
    batch_size: int = 200
    #: Safe to re-run over old events (projections); replay refuses others unless forced.
    replay_safe: bool = False
    accepts: Callable[[str], bool] | None = field(default=None, compare=False)
    #: Asked when events are appended: of these event types (all subscribed to), which have an
    #: audience now? The others get no delivery for this handler (webhook fan-out with no endpoint
    #: that wants them: 9 of a bill run's 20 deliveries per subscription otherwise).
    audience: Callable[[set[str]], set[str]] | None = field(default=None, compare=False)
    #: Empties what the handler builds, so ``replay_events --reset`` can rebuild it.
    reset: Callable[[], None] | None = field(default=None, compare=False)
    #: Builds what a client reads next: a client's request runs it before answering (step 6).
    read_your_writes: bool = False

    @property
    def context(self) -> str:
        return self.name.split(".", 1)[0]

    def subscribes_to(self, event_type: str) -> bool:
        if not any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.patterns):
            return False
        return self.accepts is None or self.accepts(event_type)

    def handle(self, events: Sequence[DomainEvent]) -> None:
        if self.batch:
            self.fn(events)
            return
        for event in events:
            with caused_by(cause_of(event)):
                self.fn(event)


#: How many events a bill-run policy takes at once (and how many subscriptions a renewal batch
#: holds): each batch pays fixed costs — claim, locks, one commit, one task message — so at 500 they
#: were half of a bill run's queries per subscription.
LARGE_BATCH = 1000

HANDLERS: dict[str, HandlerSpec] = {}
_subscribers_cache: dict[str, list[HandlerSpec]] = {}


def reacts_to(
    *patterns: str,
    batch: bool = False,
    batch_size: int | None = None,
    replay_safe: bool = False,
    accepts: Callable[[str], bool] | None = None,
    audience: Callable[[set[str]], set[str]] | None = None,
    reset: Callable[[], None] | None = None,
    name: str | None = None,
    read_your_writes: bool = False,
) -> Callable:
    """Subscribe the decorated function to events matching ``patterns``.

    Patterns are event types (``"billing.PaymentFailed"``) or globs
    (``"billing.*"``, ``"*"``). A plain handler takes one :class:`DomainEvent`
    and runs with that event as the cause of whatever it records; a
    ``batch=True`` handler takes a list and uses :func:`cause_of` itself.
    ``read_your_writes=True`` marks a handler whose effect a client must see in
    its next call (contract step 6): keep such handlers quick and free of
    outside calls (they run before the client's answer).
    """

    def register(fn: Callable) -> Callable:
        handler_name = name or f"{fn.__module__.split('.')[0]}.{fn.__name__}"
        if handler_name in HANDLERS and HANDLERS[handler_name].fn.__qualname__ != fn.__qualname__:
            raise RuntimeError(f"Handler name {handler_name} registered twice.")
        HANDLERS[handler_name] = HandlerSpec(
            name=handler_name,
            patterns=patterns,
            fn=fn,
            batch=batch,
            batch_size=batch_size or settings.OUTBOX_BATCH_SIZE,
            replay_safe=replay_safe,
            accepts=accepts,
            audience=audience,
            reset=reset,
            read_your_writes=read_your_writes,
        )
        _subscribers_cache.clear()
        return fn

    return register


def subscribers_for(event_type: str) -> list[HandlerSpec]:
    try:
        return _subscribers_cache[event_type]
    except KeyError:
        found = sorted((h for h in HANDLERS.values() if h.subscribes_to(event_type)), key=lambda h: h.name)
        _subscribers_cache[event_type] = found
        return found


def deliveries_for(event_types: set[str]) -> dict[str, list[HandlerSpec]]:
    """The handlers that get a delivery of each event type being appended now: the subscribers,
    less those whose ``audience`` says nobody wants that type at the moment (asked once per call)."""
    found = {event_type: subscribers_for(event_type) for event_type in event_types}
    asking = {h.name: h for handlers in found.values() for h in handlers if h.audience is not None}
    for name, handler in asking.items():
        mine = {event_type for event_type, handlers in found.items() if handler in handlers}
        unwanted = mine - handler.audience(mine)
        for event_type in unwanted:
            found[event_type] = [h for h in found[event_type] if h.name != name]
    return found


# -- running handlers ------------------------------------------------------------

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
        with running(None), transaction.atomic(durable=True):
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
        _defer_for_replay(handler_name, ids)
        return 0
    if spec.batch and len(ids) > 1:
        try:
            with handler_transaction():
                events = _claim(ids, wait=wait)
                if events:
                    spec.handle(events)
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
        return len(events)
    except Exception as exc:
        logger.exception("Handler %s failed on delivery %s", spec.name, delivery_id)
        _record_failure(spec, delivery_id, exc)
        return 0


# -- the replay fence -------------------------------------------------------------
#: A replay refreshes its fence every batch; one older than this was left by a crashed replay.
REPLAY_FENCE_STALE = timedelta(minutes=10)
#: How long a live delivery fenced off by a replay waits before the relay tries it again.
REPLAY_DEFER = timedelta(seconds=5)


def _fence_name(handler_name: str) -> str:
    return f"replay:{handler_name}"[:50]


def replay_fenced(handler_name: str) -> bool:
    """Whether ``replay_events`` is replaying this handler now (a fresh fence is up)."""
    return Heartbeat.objects.filter(
        name=_fence_name(handler_name), beat_at__gt=timezone.now() - REPLAY_FENCE_STALE
    ).exists()


@contextlib.contextmanager
def replay_fence(handler_name: str) -> Iterator[Callable[[], None]]:
    """Pause live delivery to ``handler_name`` while a replay runs: workers leave its deliveries open
    (deferred by ``REPLAY_DEFER``) instead of running them beside the replay. Yields a function the
    replay calls every batch to keep the fence fresh; on exit the fence comes down and the deferred
    deliveries are due at once for the relay. Nothing is lost (the rows stay open) and nothing runs
    twice (the ledger and the projections' positions still decide)."""
    name = _fence_name(handler_name)

    def refresh() -> None:
        Heartbeat.objects.update_or_create(name=name, defaults={"beat_at": timezone.now()})

    refresh()
    try:
        yield refresh
    finally:
        Heartbeat.objects.filter(name=name).delete()
        EventDelivery.objects.filter(handler=handler_name, status__in=OPEN_STATUSES).update(
            dispatch_after=timezone.now()
        )


def _defer_for_replay(handler_name: str, ids: Sequence[int]) -> None:
    EventDelivery.objects.filter(pk__in=list(ids), status__in=OPEN_STATUSES).update(
        dispatch_after=timezone.now() + REPLAY_DEFER
    )
    logger.info("Replay of %s under way: %d live delivery(ies) deferred.", handler_name, len(ids))


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
        _send(spec.name, [delivery_id], countdown=delay.total_seconds())


# -- dispatching -------------------------------------------------------------------


def _chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _send(handler_name: str, ids: Sequence[int], *, countdown: float | None = None) -> None:
    mode = settings.EVENT_DISPATCH
    if mode == "manual" or not ids:
        return
    spec = HANDLERS.get(handler_name)
    size = spec.batch_size if spec else settings.OUTBOX_BATCH_SIZE
    copies = 2 if settings.OUTBOX_DUPLICATE_DELIVERIES else 1  # fault tests: every message sent twice
    if mode == "inline":
        for chunk in _chunks(ids, size):
            for _ in range(copies):
                run_deliveries(handler_name, chunk)
        return
    from sharedkernel.tasks import deliver_events

    for chunk in _chunks(ids, size):
        for _ in range(copies):
            deliver_events.apply_async(args=(handler_name, chunk), countdown=countdown)


def send_grouped(deliveries: Iterable[tuple[str, int]]) -> None:
    by_handler: dict[str, list[int]] = defaultdict(list)
    for handler_name, delivery_id in deliveries:
        by_handler[handler_name].append(delivery_id)
    for handler_name, ids in by_handler.items():
        _send(handler_name, ids)


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
        for handler_name, ids in _group(here).items():
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
        for handler_name, ids in _group(rows).items():
            run_deliveries(handler_name, ids)
    logger.info("Relayed %d open deliveries.", len(rows))
    return len(rows)


def _group(rows: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for handler_name, pk in rows:
        grouped[handler_name].append(pk)
    return grouped


class DeliveriesFailed(RuntimeError):
    """Deliveries ended FAILED (attempts exhausted): a handler is broken, and waiting on the flow
    to settle must say so rather than end quietly. ``failures`` is (delivery id, handler, error)."""

    def __init__(self, failures: Sequence[tuple[int, str, str]], more: int = 0):
        self.failures = list(failures)
        lines = [f"delivery {pk} to {handler}: {_last_line(error)}" for pk, handler, error in failures]
        if more:
            lines.append(f"... and {more} more")
        super().__init__(f"{len(failures) + more} event deliveries ended failed:\n" + "\n".join(lines))


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
    """
    total = 0
    for _ in range(max_rounds):
        query = EventDelivery.objects.filter(status__in=OPEN_STATUSES)
        if test_clock_id:
            query = query.filter(test_clock_id=test_clock_id)
        rows = list(query.order_by("pk").values_list("handler", "pk")[:2000])
        if not rows:
            raise_if_failed(test_clock_id=test_clock_id)
            return total
        for handler_name, ids in _group(rows).items():
            spec = HANDLERS.get(handler_name)
            for chunk in _chunks(ids, spec.batch_size if spec else 200):
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

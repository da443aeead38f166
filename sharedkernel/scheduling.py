"""Work that happens because time passed, for real time and for test clocks.

Each context registers its time-driven jobs here with :func:`scheduled_job`
(trial expiry, renewals, payment retries, reminders, …). A job knows two things
for a *scope* — customers on real time (``test_clock_id=None``) or on one test
clock:

* ``next_due(scope)``: the earliest moment something of its kind is due;
* ``run(now, scope)``: do everything due at or before ``now``, idempotently.

Celery beat calls :func:`run_job` with the real time. Advancing a test clock
calls the very same ``run`` for the clock's customers, step by step in time
order, waiting after each step until every consequence has been handled — as
Celery tasks that survive the process that asked (see "advancing a test clock").
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from sharedkernel.bus import drain, relay
from sharedkernel.clock import SystemClock
from sharedkernel.correlation import new_chain
from sharedkernel.errors import DomainError, InvalidInput
from sharedkernel.models import OPEN_STATUSES, EventDelivery, TestClock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    name: str
    run: Callable[[datetime, str | None], int]
    next_due: Callable[[str | None], datetime | None]


JOBS: dict[str, ScheduledJob] = {}


def scheduled_job(name: str, *, next_due: Callable[[str | None], datetime | None]) -> Callable:
    """Register ``run(now, test_clock_id) -> items handled`` as a time-driven job.

    How often beat runs it, and why, is written in config/celery.py.
    """

    def register(run: Callable[[datetime, str | None], int]) -> Callable:
        JOBS[name] = ScheduledJob(name=name, run=run, next_due=next_due)
        return run

    return register


#: Work a context does after a handler committed (an outside call, then its answer in a new transaction)
#: is no open delivery; each such context registers here whether some is under way for a scope
#: (``None``: any), so that settling waits for it as it waits for deliveries.
WORK_IN_FLIGHT: dict[str, Callable[[str | None], bool]] = {}


def work_in_flight(name: str) -> Callable:
    def register(check: Callable[[str | None], bool]) -> Callable:
        WORK_IN_FLIGHT[name] = check
        return check

    return register


def busy_with(test_clock_id: str | None = None) -> list[str]:
    """The names of the work still in flight for a scope (``None``: any)."""
    return [name for name, check in WORK_IN_FLIGHT.items() if check(test_clock_id)]


def still_running(test_clock_id: str | None = None) -> list[str]:
    """The handlers with open deliveries and the work in flight for a scope (``None``: any), read in one
    snapshot: a handler commits its delivery done and its work in flight at once, and that work commits
    its answer and new deliveries at once, so two reads at two moments could see neither."""
    connection = transaction.get_connection()
    with transaction.atomic():
        if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
            with connection.cursor() as cursor:  # the first statement: the whole check reads one snapshot
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        deliveries = EventDelivery.objects.filter(status__in=OPEN_STATUSES)
        if test_clock_id:
            deliveries = deliveries.filter(test_clock_id=test_clock_id)
        handlers = sorted(set(deliveries.values_list("handler", flat=True)[:50]))
        return handlers + busy_with(test_clock_id)


def in_scope(query, test_clock_id: str | None):
    """Rows a job may touch in a scope: real-time jobs only rows on no test clock, a clock's jobs only
    its own (the query's model has a ``test_clock_id`` column)."""
    return query.filter(test_clock_id=test_clock_id) if test_clock_id else query.filter(test_clock_id__isnull=True)


def run_job(name: str, *, now: datetime | None = None, test_clock_id: str | None = None) -> int:
    job = JOBS[name]
    with new_chain(test_clock_id=test_clock_id):
        handled = job.run(now or SystemClock().now(), test_clock_id)
    if handled:
        logger.info("Job %s handled %d item(s).", name, handled)
    return handled


#: No test clock goes past this: periods, retries and reports computed from a clock near the
#: calendar's end (year 9999) would overflow.
LATEST_TEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def check_test_time(moment: datetime, *, field: str) -> None:
    if moment >= LATEST_TEST_TIME:
        raise InvalidInput(
            f"A test clock stays before {LATEST_TEST_TIME:%Y-%m-%d}.", details={field: "too far in the future"}
        )


class ClockBusy(DomainError):
    code = "test_clock_advancing"


def _open_work(test_clock_id: str) -> list[str]:
    """What of this clock's consequences is still open (none once drained in-process); due retries
    are relayed on the way, so settling does not depend on beat."""
    if settings.EVENT_DISPATCH != "celery":
        drain(test_clock_id=test_clock_id)
        return []
    stuck = still_running(test_clock_id)
    if stuck:
        relay(test_clock_id=test_clock_id)
    return stuck


# -- advancing a test clock ------------------------------------------------------------------
#
# An advance is a *run* recorded on the clock (``advance_run``, ``advance_to``) and carried forward in
# *turns*. A turn settles the consequences of the last step, then moves the clock to the next due time
# and runs every job there, again and again until the target is reached and nothing is due on the way.
# All its progress is the clock's ``frozen_time`` (the jobs are idempotent at a moment), so any process
# can take the next turn:
#
# 1. The request (or admin action) checks the target and marks the clock ADVANCING in one transaction.
# 2. After commit it enqueues the first turn (EVENT_DISPATCH=celery), or takes every turn itself
#    (manual / inline dispatch: unit tests, the demo; or TEST_CLOCK_ADVANCE_RUNS_IN=caller), and waits
#    for the clock to be READY at most TEST_CLOCK_REQUEST_WAIT_SECONDS (admin: ..._ADMIN_WAIT_SECONDS).
# 3. A turn in a worker takes at least one step and stops once TEST_CLOCK_TURN_SECONDS have passed
#    (between steps, or while waiting), enqueueing the next turn at the tail of the queue: waiting for
#    deliveries never keeps the slot those deliveries need, so a worker of any concurrency cannot
#    deadlock on advances, however many run at once.
# 4. Every turn renews the run's lease (TEST_CLOCK_LEASE_SECONDS) while it works. A run whose lease ran
#    out (a killed worker or web process) is taken over by beat (:func:`resume_stalled_advances`) under a
#    new run id; a late turn of the old run finds the id changed and stops.
# 5. A job that raises, or consequences that do not settle within TEST_CLOCK_SETTLE_TIMEOUT, end the run:
#    the clock is READY at the time it reached, the error on it (``advance_error``). It is never left
#    ADVANCING.


class Turn(NamedTuple):
    outcome: str  # DONE, WAITING (the next turn is due) or LOST (another run owns the clock)
    waiting_since: float | None = None  # wall time since which the last step's consequences are open
    steps: int = 0


DONE, WAITING, LOST = "done", "waiting", "lost"
#: The steps one advance may take; a job that never stops being due is a bug.
MAX_STEPS = 100_000


def _lease_until() -> datetime:
    return SystemClock().now() + timedelta(seconds=settings.TEST_CLOCK_LEASE_SECONDS)


def _owned(test_clock_id: str, run) -> QuerySet:
    return TestClock.objects.filter(pk=test_clock_id, advance_run=run, status=TestClock.Status.ADVANCING)


def begin_advance(test_clock_id: str, to: datetime) -> TestClock:
    """Check the target and mark the clock ADVANCING to it under a new run.

    Refused before anything runs (the clock stays ``ready``): a clock already advancing (ClockBusy), a
    target not later than the clock, more than TEST_CLOCK_MAX_ADVANCE ahead of it, or past LATEST_TEST_TIME.
    """
    if to.tzinfo is None:
        raise InvalidInput("The target time needs a timezone offset.", details={"to": "naive datetime"})
    check_test_time(to, field="to")
    horizon = settings.TEST_CLOCK_MAX_ADVANCE
    with transaction.atomic():
        clock = TestClock.objects.select_for_update().get(pk=test_clock_id)
        if clock.status == TestClock.Status.ADVANCING:
            raise ClockBusy("This test clock is already being advanced.")
        if to <= clock.frozen_time:
            raise InvalidInput(
                "A test clock only moves forward.",
                details={"to": f"must be later than {clock.frozen_time.isoformat()}"},
            )
        if to - clock.frozen_time > horizon:
            raise InvalidInput(
                f"A test clock moves at most {horizon.days} days per advance; advance it in steps.",
                details={"to": f"at most {(clock.frozen_time + horizon).isoformat()}"},
            )
        clock.begin_advance(to=to, run=uuid.uuid4(), lease_until=_lease_until())
        clock.save(update_fields=["status", "advance_to", "advance_run", "advance_lease_until", "advance_error"])
    return clock


def advance_test_clock(test_clock_id: str, to: datetime) -> TestClock:
    """Move a test clock forward to ``to`` in this process, running every due job on the way.

    Jobs run in time order: if a renewal at day 30 fails a payment whose retry
    is due an hour later, the retry runs at that hour, before anything due
    later. Returns once the whole chain of consequences has been handled; raises what stopped it
    (the clock then READY where it got to, the error on it). Refused up front as :func:`begin_advance`.
    """
    clock = begin_advance(test_clock_id, to)
    take_turn(str(clock.pk), clock.advance_run)
    clock.refresh_from_db()
    return clock


def request_advance(test_clock_id: str, to: datetime) -> TestClock:
    """Begin an advance and hand it to a worker after commit (or run it here, see step 2 above);
    :func:`wait_for_advance` tells when it is done."""
    clock = begin_advance(test_clock_id, to)
    carry_on(str(clock.pk), clock.advance_run)
    return clock


def wait_for_advance(test_clock_id: str, seconds: float) -> TestClock:
    """The clock once it is no longer advancing, or as it is after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        clock = TestClock.objects.get(pk=test_clock_id)
        left = deadline - time.monotonic()
        if clock.status != TestClock.Status.ADVANCING or left <= 0:
            return clock
        time.sleep(min(0.05, left))


def carry_on(test_clock_id: str, run, *, waiting_since: float | None = None, steps: int = 0) -> None:
    """Have the next turn of ``run`` taken: by a worker after commit, or here, to the end."""
    if settings.EVENT_DISPATCH == "celery" and settings.TEST_CLOCK_ADVANCE_RUNS_IN == "worker":
        from sharedkernel.tasks import advance_test_clock as turn_task

        args = (str(test_clock_id), str(run), waiting_since, steps)
        # robust: with the broker down the clock keeps its lease, and beat takes the run over when it ends
        transaction.on_commit(partial(turn_task.apply_async, args=args), robust=True)
        return
    try:
        take_turn(test_clock_id, run, waiting_since=waiting_since, steps=steps)
    except Exception:
        logger.exception("The advance of test clock %s stopped; the error is on the clock.", test_clock_id)


def take_turn_in_worker(test_clock_id: str, run: str, waiting_since: float | None, steps: int) -> str:
    """A worker's turn: a step at least, about TEST_CLOCK_TURN_SECONDS, then the next turn goes to the queue's tail."""
    turn = take_turn(
        test_clock_id, run, seconds=settings.TEST_CLOCK_TURN_SECONDS, waiting_since=waiting_since, steps=steps
    )
    if turn.outcome == WAITING:
        carry_on(test_clock_id, run, waiting_since=turn.waiting_since, steps=turn.steps)
    return turn.outcome


def take_turn(
    test_clock_id: str, run, *, seconds: float | None = None, waiting_since: float | None = None, steps: int = 0
) -> Turn:
    """Carry ``run`` forward for about ``seconds`` (``None``: to the end) from where the clock is.

    A job that raises, or a step whose consequences stay open past TEST_CLOCK_SETTLE_TIMEOUT, ends the
    run (READY, the error recorded) and is raised."""
    scope = str(test_clock_id)
    owned = _owned(scope, run)
    if not owned.update(advance_lease_until=_lease_until()):
        return Turn(LOST)
    current, to = owned.values_list("frozen_time", "advance_to").get()
    turn_ends = None if seconds is None else time.monotonic() + seconds
    steps_before = steps
    renewed = time.monotonic()
    try:
        while True:
            while stuck := _open_work(scope):
                waiting_since = waiting_since or time.time()
                if time.time() - waiting_since > settings.TEST_CLOCK_SETTLE_TIMEOUT:
                    raise TimeoutError(f"Test clock {scope} did not settle; still open: {', '.join(stuck)}")
                if turn_ends is not None and time.monotonic() > turn_ends:
                    return Turn(WAITING, waiting_since, steps)
                time.sleep(0.05)
                if time.monotonic() - renewed > 1:
                    renewed = time.monotonic()
                    if not owned.update(advance_lease_until=_lease_until()):
                        return Turn(LOST)
            waiting_since = None
            due = _due_times(scope)
            if current >= to and not any(t <= to for t in due):
                owned.update(status=TestClock.Status.READY, advance_lease_until=None)
                return Turn(DONE, steps=steps)
            if turn_ends is not None and time.monotonic() > turn_ends and steps > steps_before:  # one step at least
                return Turn(WAITING, None, steps)
            steps += 1
            if steps > MAX_STEPS:  # pragma: no cover - a job that never stops being due is a bug
                raise RuntimeError("Test clock advance did not converge.")
            current = max(current, min([t for t in due if t <= to], default=to))
            renewed = time.monotonic()
            if not owned.update(frozen_time=current, advance_lease_until=_lease_until()):
                return Turn(LOST)
            for name in JOBS:
                run_job(name, now=current, test_clock_id=scope)
    except Exception as exc:
        owned.update(
            status=TestClock.Status.READY, advance_lease_until=None, advance_error=f"{type(exc).__name__}: {exc}"
        )
        raise


def resume_stalled_advances() -> int:
    """Beat: take over every advance whose lease ran out (its worker or web process died mid-way) under a
    new run, from where the clock got to, to the same target. Returns how many were resumed."""
    now = SystemClock().now()
    expired = Q(advance_lease_until__lt=now) | Q(advance_lease_until__isnull=True)
    stalled = TestClock.objects.filter(expired, status=TestClock.Status.ADVANCING)
    resumed = 0
    for pk, target in list(stalled.values_list("pk", "advance_to")):
        run = uuid.uuid4()
        taken = stalled.filter(pk=pk)
        if target is None:  # left ADVANCING before advances recorded their target: nothing to resume
            taken.update(status=TestClock.Status.READY, advance_error="An advance was interrupted; advance again.")
            continue
        if taken.update(advance_run=run, advance_lease_until=_lease_until()):
            logger.warning("Resuming the advance of test clock %s to %s (its lease ran out).", pk, target)
            carry_on(str(pk), run)
            resumed += 1
    return resumed


def _due_times(scope: str) -> list[datetime]:
    return [t for t in (job.next_due(scope) for job in JOBS.values()) if t is not None]

"""Work that happens because time passed, for real time and for test clocks.

Each context registers its time-driven jobs here with :func:`scheduled_job`
(trial expiry, renewals, payment retries, reminders, …). A job knows two things
for a *scope* — customers on real time (``test_clock_id=None``) or on one test
clock:

* ``next_due(scope)``: the earliest moment something of its kind is due;
* ``run(now, scope)``: do everything due at or before ``now``, idempotently.

Celery beat calls :func:`run_job` with the real time. Advancing a test clock
calls the very same ``run`` for the clock's customers, step by step in time
order, waiting after each step until every consequence has been handled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

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


def settle(test_clock_id: str, *, timeout: float | None = None) -> None:
    """Wait until every event of this clock's customers has been handled.

    With workers (EVENT_DISPATCH=celery) this polls, relaying due retries
    itself so it does not depend on beat; otherwise it runs them in-process.
    """
    if settings.EVENT_DISPATCH != "celery":
        drain(test_clock_id=test_clock_id)
        return
    deadline = time.monotonic() + (timeout or settings.TEST_CLOCK_SETTLE_TIMEOUT)
    while stuck := still_running(test_clock_id):
        relay(test_clock_id=test_clock_id)
        if time.monotonic() > deadline:
            raise TimeoutError(f"Test clock {test_clock_id} did not settle; still open: {', '.join(stuck)}")
        time.sleep(0.05)


def advance_test_clock(test_clock_id: str, to: datetime) -> TestClock:
    """Move a test clock forward to ``to``, running every due job on the way.

    Jobs run in time order: if a renewal at day 30 fails a payment whose retry
    is due an hour later, the retry runs at that hour, before anything due
    later. Returns once the whole chain of consequences has been handled.

    Refused before anything runs (the clock stays ``ready``): a target not later than the
    clock, more than TEST_CLOCK_MAX_ADVANCE ahead of it, or past LATEST_TEST_TIME.
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
        TestClock.objects.filter(pk=test_clock_id).update(status=TestClock.Status.ADVANCING)
    scope = str(test_clock_id)
    try:
        settle(scope)
        current = clock.frozen_time
        for _ in range(100_000):
            due = [t for t in (job.next_due(scope) for job in JOBS.values()) if t is not None]
            step = min([t for t in due if t <= to], default=to)
            current = max(current, step)
            TestClock.objects.filter(pk=test_clock_id).update(frozen_time=current)
            for name in JOBS:
                run_job(name, now=current, test_clock_id=scope)
            settle(scope)
            if current >= to and not any(t <= to for t in _due_times(scope)):
                break
        else:  # pragma: no cover - a job that never stops being due is a bug
            raise RuntimeError("Test clock advance did not converge.")
    finally:
        TestClock.objects.filter(pk=test_clock_id).update(status=TestClock.Status.READY)
    clock.refresh_from_db()
    return clock


def _due_times(scope: str) -> list[datetime]:
    return [t for t in (job.next_due(scope) for job in JOBS.values()) if t is not None]

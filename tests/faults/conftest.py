"""What the fault tests share: a private Redis they may kill, private workers on it, and settling
everything a fault left behind (the bill run they fault is in :mod:`tests.faults.bill_run`).

Only processes a test started itself are killed: the shared Redis (REDIS_URL) and the session's
worker are never touched; the test process's Celery app is pointed at the private Redis for the
test and back afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from tests.conftest import ARTIFACTS, Worker, wait_until_handled, wait_until_worker_idle

REDIS_SERVER = shutil.which("redis-server")
_ENGINE = django_settings.DATABASES["default"]["ENGINE"]
if _ENGINE.endswith("sqlite3"):
    _SKIP = "fault tests need PostgreSQL (set DATABASE_URL): concurrent writers, killed connections, row locks"
elif not django_settings.REDIS_URL:
    _SKIP = "fault tests need Redis (set REDIS_URL): they kill a private redis-server broker"
elif not REDIS_SERVER:
    _SKIP = "fault tests need the redis-server binary to start a private broker"
else:
    _SKIP = ""

#: Every module here: ``pytestmark = FAULTS``.
FAULTS = [pytest.mark.flow, pytest.mark.skipif(bool(_SKIP), reason=_SKIP or "-")]

#: How long a delivery lost with a broker or a worker waits for the relay (production: 300 s).
REDISPATCH_SECONDS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, *, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Not within {timeout}s: {what}")
        time.sleep(every)


# -- a Redis of our own --------------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on a free loopback port, no persistence: killing it loses what it held."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def _answers(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", self.port)) != 0:
                return False
            try:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
            except OSError:
                return False

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, timeout=10, what=f"private redis on {self.port} answering")
        return self

    def kill(self) -> None:
        """SIGKILL: the queue it held is gone, as when a broker host dies."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        wait_until(lambda: not self._answers(), timeout=10, what=f"private redis on {self.port} gone")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def reset_producers(app) -> None:
    """Forget pooled broker connections so the next publish uses the current broker_url."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def descendants(pid: int) -> list[int]:
    """Child processes (recursively) of ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class PrivateWorker(Worker):
    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once: no ack, no rollback by Celery, no goodbye."""
        assert self.process is not None
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()


@dataclass
class Broker:
    """A private Redis (broker and cache of private workers, broker of this process) and its workers."""

    redis: PrivateRedis
    queue: str
    base_env: dict
    workers: list[PrivateWorker] = field(default_factory=list)

    def worker(self, **env: str) -> PrivateWorker:
        name = f"{self.queue}-{len(self.workers)}"
        full = dict(
            self.base_env,
            REDIS_URL=self.redis.url,
            CELERY_QUEUE=self.queue,
            WORKER_READY_FILE=str(ARTIFACTS / f"worker-{name}.ready"),
            OUTBOX_REDISPATCH_AFTER_SECONDS=str(REDISPATCH_SECONDS),
            **env,
        )
        worker = PrivateWorker(self.queue, full, ARTIFACTS / "celery-worker-faults.log")
        worker.start()
        self.workers.append(worker)
        return worker


@pytest.fixture
def broker(flow, settings):
    """A private broker for this test (the session worker stays idle on the shared Redis)."""
    from config.celery import app

    settings.OUTBOX_REDISPATCH_AFTER = timedelta(seconds=REDISPATCH_SECONDS)
    redis = PrivateRedis().start()
    queue = f"{flow.queue}-faults-{uuid.uuid4().hex[:6]}"
    original = app.conf.broker_url, app.conf.task_default_queue
    reset_producers(app)
    app.conf.broker_url, app.conf.task_default_queue = redis.url, queue
    found = Broker(redis, queue, dict(flow.env))
    try:
        yield found
        if redis.process and redis.process.poll() is None and any(w.process.poll() is None for w in found.workers):
            wait_until_handled(timeout=60)  # never leave the flush to a worker still busy
            wait_until_worker_idle()
    finally:
        for worker in found.workers:
            worker.stop()
        app.conf.broker_url, app.conf.task_default_queue = original
        reset_producers(app)
        redis.stop()


#: Work this young counts as live in :func:`settle_everything` (a loopback POST or an SMTP batch
#: takes milliseconds; a sender that has not answered within this is dead).
LIVE_MARGIN = timedelta(seconds=10)


def wait_until_no_send_in_flight(deadline: float) -> None:
    """No webhook attempt on record without its answer, and no e-mail held by a sender."""
    from django.db.models import Exists, F, OuterRef

    from notifications.models import Notification, WebhookAttempt, WebhookDelivery

    def in_flight() -> bool:
        answered = WebhookAttempt.objects.filter(delivery=OuterRef("pk"), number=F("delivery__attempts"))
        unanswered = (
            WebhookDelivery.objects.filter(status__in=["pending", "retrying"], attempts__gt=0)
            .exclude(Exists(answered))
            .exists()
        )
        held = Notification.objects.filter(status="queued", held_until__gt=timezone.now()).exists()
        return unanswered or held

    settle_by = min(deadline, time.monotonic() + 15)  # a dead sender's hold or attempt is never answered
    while in_flight() and time.monotonic() < settle_by:
        time.sleep(0.1)


#: Work a handler hands to an outside system after its commit (sharedkernel.scheduling.work_in_flight).
OUTSIDE_CALLS = {"billing.tax_quotes", "billing.charges"}


def recover_lost_outside_calls(deadline: float) -> None:
    """A worker killed after a handler's commit and before the outside call's answer was recorded leaves
    a tax quote or a charge in flight that nobody will answer. Beat recovers them once their lease has
    run out (``billing.retry_tax`` re-quotes a draft at its ``tax_retry_at``; ``billing.resolve_charges``
    asks the gateway again, same idempotency key, after BILLING_CHARGE_RESOLVE_AFTER_SECONDS): when
    nothing but such work has been open for 15 s, act as those jobs: retry_tax at the moment the lost
    drafts are due (:func:`_when_lost_quotes_are_due`), resolve_charges for charges older than LIVE_MARGIN.
    Both record an answer only once (a live quote or charge answered meanwhile is left as it is)."""
    from billing import commands
    from billing.commands import TAX_RETRY_BACKOFF
    from sharedkernel.bus import relay
    from sharedkernel.scheduling import run_job, still_running

    only_outside_since = None  # a live quote or charge gets 15 s to be answered before beat's part
    while (stuck := still_running()) and time.monotonic() < deadline:
        if not set(stuck) <= OUTSIDE_CALLS:
            only_outside_since = None
        elif only_outside_since is None:
            only_outside_since = time.monotonic()
        elif time.monotonic() - only_outside_since > 15:
            run_job(
                "billing.retry_tax", now=_when_lost_quotes_are_due(timezone.now() + TAX_RETRY_BACKOFF[0] - LIVE_MARGIN)
            )
            commands.resolve_stale_charges(older_than=LIVE_MARGIN)
            only_outside_since = None
        relay()
        time.sleep(0.05)


def _when_lost_quotes_are_due(by_wall_clock):
    """The moment beat's retry_tax would see every lost quote as due. A draft's retry time is its
    event's time plus the backoff, and a test's bill run happens at a moment it names (a period's end,
    weeks after the wall clock), so the wall clock alone would never reach it."""
    from django.db.models import Max

    from billing.models import Invoice, InvoiceStatus

    waiting = Invoice.objects.filter(status=InvoiceStatus.DRAFT, tax_calculated=False, tax_retry_at__isnull=False)
    latest = waiting.aggregate(at=Max("tax_retry_at"))["at"]
    return max(by_wall_clock, latest) if latest else by_wall_clock


def settle_everything(*, timeout: float = 120) -> None:
    """Every delivery handled; then, acting as beat, what handlers left for after their commit and a
    crash lost (an e-mail or a webhook's first attempt) is picked up by the retry jobs."""
    from notifications.models import Notification, WebhookDelivery
    from sharedkernel.scheduling import run_job

    deadline = time.monotonic() + timeout
    while True:
        recover_lost_outside_calls(deadline)
        wait_until_handled(timeout=max(1, deadline - time.monotonic()))
        wait_until_worker_idle()
        unsent = (
            Notification.objects.filter(status__in=["queued", "failed"]).exists()
            or WebhookDelivery.objects.filter(status__in=["pending", "retrying"]).exists()
        )
        if not unsent:
            return
        if time.monotonic() > deadline:
            raise AssertionError("e-mail or webhooks still waiting to go out")
        # let the sends in flight finish (a POST or an SMTP hand-over runs with no transaction open,
        # so an idle database says nothing about them), then act as beat's retry jobs once their
        # pick-up delay has passed: what is left then was lost to the fault, not in flight
        wait_until_no_send_in_flight(deadline)
        wait_until_worker_idle()
        # "later" is as far on as beat's retry jobs need to see a lost first attempt or a dead
        # sender's hold as due (their one-minute pick-up), and no further: an attempt or a hold
        # younger than LIVE_MARGIN is still someone's live work, never taken over
        later = timezone.now() + timedelta(minutes=1) - LIVE_MARGIN
        run_job("notifications.retry_mail", now=later)
        run_job("notifications.retry_webhooks", now=later)


@pytest.fixture
def receiver(flow):
    """A loopback webhook receiver (register it with :func:`listen` once the set-up is done)."""
    from tests.notifications.receiver import Receiver

    with Receiver() as found:
        yield found


def queue_empty(broker: Broker) -> bool:
    """Nothing waiting in the private broker's queue and nothing taken but unacknowledged."""
    import redis as redis_lib

    client = redis_lib.Redis.from_url(broker.redis.url)
    try:
        return client.llen(broker.queue) == 0 and client.hlen("unacked") == 0
    finally:
        client.close()


def close_db() -> None:
    connection.close()

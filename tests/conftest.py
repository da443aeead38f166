"""Shared fixtures.

* Unit tests of aggregates and value objects need no database.
* Integration tests run with EVENT_DISPATCH=manual and :func:`drain` the
  deliveries in-process — the same handler code the worker runs.
* Flow tests (``@pytest.mark.flow``) commit for real and are handled by a real
  ``celery worker`` process started once per session against the test database
  and the broker (Redis when REDIS_URL is set, else the filesystem transport).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

os.environ.setdefault("TESTING", "1")

# helpers that check as they go explain their failures as the tests' own asserts do
pytest.register_assert_rewrite("tests.faults.bill_run", "tests.flows.api", "tests.subscriptions.api")

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "test-artifacts"))


@pytest.fixture(autouse=True)
def _manual_dispatch(settings, request):
    """Outside flow tests nothing is sent to a broker; tests drain deliveries themselves."""
    if request.node.get_closest_marker("flow") is None:
        settings.EVENT_DISPATCH = "manual"


@pytest.fixture
def drain():
    from sharedkernel.bus import drain as run_all

    return run_all


@pytest.fixture
def staff(db):
    """An API client holding a staff member's token."""
    from tests.helpers import api_client, staff_user

    return api_client(staff_user())


@pytest.fixture
def admin(client, db):
    """Django's test client logged in as staff, for the admin pages."""
    from tests.helpers import staff_user

    client.force_login(staff_user("boss"))
    return client


def at(text: str) -> datetime:
    """UTC datetime from '2025-01-31 10:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _flush_retrying_on_lock_conflicts() -> None:
    """Tear-down's TRUNCATE of every table may deadlock with the worker's next transaction (a late
    duplicate message it picks up after the idle check); PostgreSQL then aborts one of the two. When
    the loser is TRUNCATE, the rows stay behind and the next test fails on them. Retry the flush, after
    waiting for the worker to leave its transaction, a few times before giving up."""
    from django.db import OperationalError

    try:
        from django.db.backends.postgresql.operations import DatabaseOperations
    except ImportError:  # no PostgreSQL driver: SQLite runs have no concurrent worker transactions
        return

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return original(self, sql_list)
            except OperationalError as exc:
                if attempt == 4:
                    raise
                print(f"flush attempt {attempt + 1} failed ({exc}); retrying", file=sys.stderr)
                time.sleep(0.2 * (attempt + 1))
                wait_until_worker_idle()

    DatabaseOperations.execute_sql_flush = execute_sql_flush


_flush_retrying_on_lock_conflicts()


# -- a real worker -------------------------------------------------------------------


def _database_url(settings_dict: dict) -> str:
    engine = settings_dict["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class Worker:
    def __init__(self, queue: str, env: dict, log_path: Path):
        self.queue, self.env, self.log_path = queue, env, log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        from config.celery import worker_command

        ready = Path(self.env["WORKER_READY_FILE"])
        ready.unlink(missing_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process's lifetime
        self.process = subprocess.Popen(
            worker_command(self.queue, concurrency=2),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"Celery worker exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Celery worker not ready after {timeout}s; see {self.log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def smtp_sink():
    """A real SMTP server on loopback; flow tests' e-mail goes here (the worker's too)."""
    from tests.fakes.smtp import SmtpSink

    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, smtp_sink):
    from django.conf import settings
    from django.db import connection

    from config.celery import app

    ARTIFACTS.mkdir(exist_ok=True)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_database_url(connection.settings_dict),
        EVENT_DISPATCH="celery",
        CELERY_QUEUE=queue,
        TESTING="1",
        WORKER_READY_FILE=str(ARTIFACTS / f"worker-{queue}.ready"),
        OUTBOX_RETRY_BASE_SECONDS="1",
        SUBSCRIPTIONHUB_VAR_DIR=str(settings.VAR_DIR),
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_sink.port),
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="1",  # receivers in tests live on loopback
    )
    worker = Worker(queue, env, ARTIFACTS / "celery-worker.log")
    worker.start()
    yield worker
    worker.stop()


def wait_until_handled(timeout: float = 60) -> None:
    """Block until the worker has handled every open delivery (relaying due retries) and finished the
    work it does after a handler's commit (a charge at the gateway and its answer).

    Raises :class:`sharedkernel.bus.DeliveriesFailed` if any delivery ended FAILED: a test that
    expects one asserts it and clears it (:func:`clear_failed_deliveries`)."""
    from sharedkernel.bus import raise_if_failed, relay
    from sharedkernel.scheduling import still_running

    deadline = time.monotonic() + timeout
    while stuck := still_running():
        relay()
        if time.monotonic() > deadline:
            raise AssertionError(f"Deliveries still open after {timeout}s: {stuck}")
        time.sleep(0.05)
    raise_if_failed()


def wait_until_queue_empty(queue: str, timeout: float = 30) -> None:
    """Block until the broker holds no message of ``queue``, waiting or taken but unacknowledged
    (Redis), or no message file of it (the filesystem transport); then until the worker is idle."""
    from django.conf import settings

    def empty() -> bool:
        if settings.REDIS_URL:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL)
            try:
                return client.llen(queue) == 0 and client.hlen("unacked") == 0
            finally:
                client.close()
        return not any(path.name.endswith(f".{queue}.msg") for path in Path(settings.BROKER_DIR).iterdir())

    deadline = time.monotonic() + timeout
    while not empty():
        if time.monotonic() > deadline:
            raise AssertionError(f"Messages of {queue} still in the broker after {timeout}s")
        time.sleep(0.05)
    wait_until_worker_idle()


def clear_failed_deliveries(handler: str) -> int:
    """A test that provoked failed deliveries of ``handler`` (and asserted them) takes them away,
    so the loud checks of drain() and wait_until_handled() see only unexpected ones."""
    from sharedkernel.models import DeliveryStatus, EventDelivery

    return EventDelivery.objects.filter(handler=handler, status=DeliveryStatus.FAILED).delete()[0]


def wait_until_worker_idle(timeout: float = 30) -> None:
    """Block until no other connection to the test database holds an open transaction.

    The worker may still be finishing a task that found nothing to claim (a duplicate, a late
    retry); flushing tables under it deadlocks TRUNCATE's AccessExclusiveLock against its row locks
    and leaves rows behind for the next test."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, state, left(query, 200) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start IS NOT NULL"
            )
            busy = cursor.fetchall()
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Other connections still in a transaction after {timeout}s: {busy}")
        time.sleep(0.05)


@pytest.fixture
def flow(celery_worker, transactional_db, settings):
    """A committed-for-real test whose events the real worker handles."""
    settings.EVENT_DISPATCH = "celery"
    settings.OUTBOX_RETRY_BASE_SECONDS = 1
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", int(celery_worker.env["EMAIL_PORT"])
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    # A flow's test-clock advances run in the test process, as they always did: the jobs they run must see
    # the test's settings and monkeypatches, which the worker process cannot. The worker takes the
    # deliveries. tests/sharedkernel/test_clock_advance_flow.py runs advances in the worker.
    settings.TEST_CLOCK_ADVANCE_RUNS_IN = "caller"
    yield celery_worker
    try:
        wait_until_handled()  # never truncate tables under a busy worker...
    finally:
        wait_until_worker_idle()  # ...nor under one still inside a transaction


# -- command declarations against what ran ------------------------------------------------


def pytest_sessionfinish(session, exitstatus):
    """Every (command, event) pair this session saw appended inside a running command must be
    declared by that command's ``@command(records=...)``. The event store already refuses an
    undeclared one where it happens (COMMAND_RECORDS_CHECK=raise); this is the net for a refusal some
    caller swallowed. The pairs are written to the artefacts for whoever updates a declaration."""
    try:
        from sharedkernel.declarations import COMMANDS, OBSERVED
    except Exception:  # Django never set up (collection failed)
        return
    if not OBSERVED:
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "command-records.txt").write_text("".join(f"{c} {e}\n" for c, e in sorted(OBSERVED)))
    wrong = sorted(
        (name, event)
        for name, event in OBSERVED
        if (spec := COMMANDS.get(name)) is not None and spec.records is not None and event not in spec.records
    )
    if wrong:
        lines = "\n".join(f"  {name} recorded {event}" for name, event in wrong)
        print(f"\nCommands recorded events they do not declare in @command(records=...):\n{lines}", file=sys.stderr)
        session.exitstatus = 1

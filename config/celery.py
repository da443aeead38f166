"""The Celery app and the one beat schedule of SubscriptionHub.

Every periodic task is listed below with when it runs and why. Time-driven
domain work is a *scheduled job* registered by its context
(``sharedkernel.scheduling.scheduled_job``); beat runs it on real time, and
advancing a test clock runs the same job for that clock's customers.
"""

from __future__ import annotations

import logging
import os
import sys

from celery import Celery, signals
from kombu.transport import redis as kombu_redis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
logger = logging.getLogger(__name__)


def _survive_a_lost_broker() -> None:
    """kombu 5.7's Redis transport, closing a channel whose broker just went away, tries to hand
    back the unacknowledged messages through a connection that no longer has a client
    (``'NoneType' object has no attribute 'hostname'``); acknowledging a message on such a channel
    fails the same way (``... no attribute 'client'``). The error escapes the consumer's recovery
    and the worker stops consuming for good: every delivery committed after the outage waited for a
    restart. Skipping the hand-back or the acknowledgement is safe here: the messages stay in Redis's
    unacked set (kombu restores them after its visibility timeout) and the outbox relay re-sends every
    open delivery anyway; handlers are idempotent."""
    if getattr(kombu_redis.QoS.restore_unacked, "_survives_lost_broker", False):
        return
    restore, ack, virtual_ack = kombu_redis.QoS.restore_unacked, kombu_redis.QoS.ack, kombu_redis.virtual.QoS.ack

    def restore_unacked(self, client=None):
        try:
            return restore(self, client)
        except AttributeError:
            logger.warning("The broker connection was gone while handing back unacked messages; the relay covers them.")
            self._delivered.clear()

    def ack_on_a_lost_channel(self, delivery_tag):
        try:
            return ack(self, delivery_tag)
        except AttributeError:
            logger.warning("The broker connection was gone while acknowledging a message; it is redelivered later.")
            virtual_ack(self, delivery_tag)  # forget it here; Redis keeps it unacked until restored

    restore_unacked._survives_lost_broker = True
    kombu_redis.QoS.restore_unacked = restore_unacked
    kombu_redis.QoS.ack = ack_on_a_lost_channel


_survive_a_lost_broker()

app = Celery("subscriptionhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _task(name: str, seconds: float, why: str) -> tuple[str, dict]:
    """A plumbing task of the kernel, run by its own name."""
    return name, {"task": name, "schedule": seconds, "why": why}


def _job(name: str, seconds: float, why: str) -> tuple[str, dict]:
    """A context's scheduled job (sharedkernel.scheduling), run on real time."""
    return name, {"task": "sharedkernel.run_scheduled_job", "schedule": seconds, "args": (name,), "why": why}


SCHEDULE = dict(
    [
        # -- plumbing --------------------------------------------------------------
        _task(
            "sharedkernel.relay_outbox",
            5.0,
            "every 5 s: re-dispatch event deliveries the broker lost or whose retry is due",
        ),
        _task(
            "sharedkernel.prune_outbox",
            3600.0,
            "hourly: delete DONE event deliveries older than OUTBOX_DONE_RETENTION_DAYS (batched)",
        ),
        _task(
            "sharedkernel.resume_test_clocks",
            30.0,
            "every 30 s: test-clock advances whose lease (TEST_CLOCK_LEASE_SECONDS) ran out — a worker or "
            "web process died mid-way — continue from where the clock got to, so none stays ADVANCING",
        ),
        _task("sharedkernel.beat_heartbeat", 30.0, "every 30 s: tell /healthz that beat is alive"),
        # -- subscriptions ---------------------------------------------------------
        _job("subscriptions.expire_trials", 60, "every minute: trials whose end has passed convert or suspend"),
        _job(
            "subscriptions.remind_trials_ending",
            300,
            "every 5 min: TrialEndingSoon for trials ending within TRIAL_REMINDER_DAYS",
        ),
        _job(
            "subscriptions.renew_subscriptions",
            60,
            "every minute: periods that ended roll over (SubscriptionRenewed) or end a scheduled cancellation",
        ),
        _job(
            "subscriptions.schedule_price_changes",
            60,
            "every minute: running price migrations schedule their price changes, PRICE_MIGRATION_BATCH per "
            "transaction, resuming from the committed cursor (a cancelled one withdraws what it scheduled)",
        ),
        _job(
            "subscriptions.calculate_usage",
            60,
            "every minute: usage of periods whose grace window (USAGE_GRACE_SECONDS) passed becomes final",
        ),
        # -- billing ---------------------------------------------------------------
        _job("billing.retry_payments", 60, "every minute: failed payments whose retry (+1 h, +24 h, +72 h) is due"),
        _job("billing.escalate_dunning", 300, "every 5 min: dunning steps that are due (reminder + one more charge)"),
        _job("billing.retry_tax", 300, "every 5 min: draft invoices waiting for the tax calculator"),
        _job(
            "billing.resolve_charges",
            120,
            "every 2 min: charges left in flight longer than BILLING_CHARGE_RESOLVE_AFTER_SECONDS (a worker died "
            "between intent and answer) are asked again with the same idempotency key and their answer recorded",
        ),
        # -- notifications -------------------------------------------------------
        _job("notifications.send_reminders", 300, "every 5 min: trial-ending reminders whose time has come"),
        _job("notifications.retry_webhooks", 30, "every 30 s: webhook deliveries whose next attempt is due"),
        _job(
            "notifications.retry_mail",
            10,
            "every 10 s: e-mail no live sender holds (left by a crash, or refused and due), drained batch "
            "after batch, so a crashed bill run's mail goes out within a minute",
        ),
        # -- analytics -----------------------------------------------------------
        _job("analytics.snapshot_mrr", 3600, "hourly: daily MRR snapshots per currency from the movements"),
        _job("analytics.monthly_report", 3600, "hourly: once a month has ended, its report (ReportGenerated)"),
    ]
)

app.conf.beat_schedule = {
    name: {key: value for key, value in entry.items() if key != "why"} for name, entry in SCHEDULE.items()
}


def worker_command(queue: str, *, concurrency: int, name: str | None = None) -> list[str]:
    """The command line of a worker that a test or a bench starts and stops: it consumes ``queue``
    alone and keeps to itself (no gossip, mingle or heartbeat with other workers); ``name`` tells
    several of them on one host apart. It writes WORKER_READY_FILE once it consumes (below)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-Q",
        queue,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        *(["-n", name] if name else []),
    ]


@signals.worker_ready.connect
def _announce_ready(sender=None, **kwargs):
    """Tests and the run script wait for this file before sending work."""
    ready_file = os.environ.get("WORKER_READY_FILE")
    if ready_file:
        with open(ready_file, "w") as handle:
            handle.write(str(os.getpid()))


@signals.beat_init.connect
def _first_heartbeat(sender=None, **kwargs):
    """Beat's first heartbeat is sent as it starts, not one interval later: /healthz (and so the
    `make run` banner) waits on it, and a restarted beat is seen alive at once."""
    app.send_task("sharedkernel.beat_heartbeat")


# -- query counting for benches (bench/bill_run.py sets QUERY_COUNT_DIR) ---------------
_queries = [0]


def _count(execute, sql, params, many, context):
    _queries[0] += 1
    return execute(sql, params, many, context)


@signals.worker_process_init.connect
def _install_query_counter(**kwargs):
    if os.environ.get("QUERY_COUNT_DIR"):
        from django.db import connection

        connection.execute_wrappers.append(_count)


@signals.task_postrun.connect
def _report_query_count(**kwargs):
    target = os.environ.get("QUERY_COUNT_DIR")
    if target:
        with open(os.path.join(target, f"{os.getpid()}.count"), "w") as handle:
            handle.write(str(_queries[0]))

"""Celery tasks of the plumbing. Thin: each one calls into bus or scheduling."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from sharedkernel import bus, scheduling
from sharedkernel.models import Heartbeat


@shared_task(name="sharedkernel.deliver_events")
def deliver_events(handler_name: str, delivery_ids: list[int]) -> int:
    return bus.run_deliveries(handler_name, delivery_ids)


@shared_task(name="sharedkernel.relay_outbox")
def relay_outbox() -> int:
    return bus.relay()


@shared_task(name="sharedkernel.prune_outbox")
def prune_outbox() -> int:
    return bus.prune_done()


@shared_task(name="sharedkernel.run_scheduled_job")
def run_scheduled_job(job_name: str) -> int:
    return scheduling.run_job(job_name)


@shared_task(name="sharedkernel.advance_test_clock")
def advance_test_clock(test_clock_id: str, run: str, waiting_since: float | None = None, steps: int = 0) -> str:
    """One turn of a test clock's advance (scheduling, "advancing a test clock"); it enqueues the next."""
    return scheduling.take_turn_in_worker(test_clock_id, run, waiting_since, steps)


@shared_task(name="sharedkernel.resume_test_clocks")
def resume_test_clocks() -> int:
    return scheduling.resume_stalled_advances()


@shared_task(name="sharedkernel.beat_heartbeat")
def beat_heartbeat() -> None:
    Heartbeat.objects.update_or_create(name="beat", defaults={"beat_at": timezone.now()})

"""Sending deliveries to the workers: grouped by handler, chunked by the handler's batch size.

``EVENT_DISPATCH`` decides how: ``celery`` (a task per chunk), ``inline`` (run here and now: tests
and the embedded demo) or ``manual`` (nothing; tests run them with ``drain``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from django.conf import settings

from sharedkernel.handlers import HANDLERS


def chunks(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def send(handler_name: str, ids: Sequence[int], *, countdown: float | None = None) -> None:
    mode = settings.EVENT_DISPATCH
    if mode == "manual" or not ids:
        return
    spec = HANDLERS.get(handler_name)
    size = spec.batch_size if spec else settings.OUTBOX_BATCH_SIZE
    copies = 2 if settings.OUTBOX_DUPLICATE_DELIVERIES else 1  # fault tests: every message sent twice
    if mode == "inline":
        from sharedkernel.delivery import run_deliveries  # it sends retries through here

        for chunk in chunks(ids, size):
            for _ in range(copies):
                run_deliveries(handler_name, chunk)
        return
    from sharedkernel.tasks import deliver_events

    for chunk in chunks(ids, size):
        for _ in range(copies):
            deliver_events.apply_async(args=(handler_name, chunk), countdown=countdown)


def send_grouped(deliveries: Iterable[tuple[str, int]]) -> None:
    for handler_name, ids in group_by_handler(deliveries).items():
        send(handler_name, ids)


def group_by_handler(rows: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = defaultdict(list)
    for handler_name, pk in rows:
        grouped[handler_name].append(pk)
    return grouped

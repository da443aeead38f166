"""The replay fence: ``replay_events`` pauses live delivery to the handler it replays.

While a fresh fence is up, workers leave that handler's deliveries open (deferred a few seconds)
instead of running them beside the replay; when it comes down they are due at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta

from django.utils import timezone

from sharedkernel.models import OPEN_STATUSES, EventDelivery, Heartbeat

logger = logging.getLogger(__name__)

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


def defer_for_replay(handler_name: str, ids: Sequence[int]) -> None:
    EventDelivery.objects.filter(pk__in=list(ids), status__in=OPEN_STATUSES).update(
        dispatch_after=timezone.now() + REPLAY_DEFER
    )
    logger.info("Replay of %s under way: %d live delivery(ies) deferred.", handler_name, len(ids))

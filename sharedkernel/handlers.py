"""The registry of handlers: who reacts to which events (``@reacts_to``), and which of them get a
delivery row when an event is appended (:func:`deliveries_for`, asked by the event store).

Policies and projections register here; :mod:`sharedkernel.delivery` runs them and
:mod:`sharedkernel.bus` hands them their events. Contexts import ``reacts_to`` and ``LARGE_BATCH``
from :mod:`sharedkernel.bus`, the kernel's face for them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings

from sharedkernel.correlation import caused_by
from sharedkernel.events import DomainEvent
from sharedkernel.eventstore import cause_of

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

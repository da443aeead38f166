"""Aggregate roots: Django models that check invariants and record events.

An aggregate method checks its rule, changes state and *records* an event in
memory. It never saves, sends or enqueues anything. A command then calls
:func:`save_aggregate`, which writes the row guarded by its version (a
concurrent writer loses with :class:`ConcurrentUpdate`) and appends the
recorded events to the event store in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import models

from sharedkernel.bulk import bulk_update_rows
from sharedkernel.errors import ConcurrentUpdate
from sharedkernel.events import Event


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    event: Event
    occurred_on: datetime
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    test_clock_id: str | None


class AggregateRoot(models.Model):
    version = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        abstract = True

    #: Name of the attribute holding the test clock the aggregate lives on (None: never on one).
    test_clock_attribute: str | None = "test_clock_id"

    @property
    def _pending(self) -> list[tuple[Event, datetime]]:
        return self.__dict__.setdefault("_pending_events", [])

    def record(self, event: Event, *, at: datetime) -> None:
        """Remember that ``event`` happened at ``at``; published when saved."""
        if at.tzinfo is None:
            raise ValueError("Events happen at timezone-aware times.")
        self._pending.append((event, at))

    @property
    def recorded_events(self) -> list[Event]:
        return [event for event, _ in self._pending]

    def pull_events(self) -> list[RecordedEvent]:
        """Hand the recorded events over (with the version they belong to) and forget them."""
        clock = getattr(self, self.test_clock_attribute, None) if self.test_clock_attribute else None
        pulled = [
            RecordedEvent(
                event=event,
                occurred_on=at,
                aggregate_type=event.aggregate_type or type(self).__name__,
                aggregate_id=event.aggregate_id,
                aggregate_version=self.version,
                test_clock_id=str(clock) if clock else None,
            )
            for event, at in self._pending
        ]
        self._pending.clear()
        return pulled


def save_aggregate(aggregate: AggregateRoot) -> None:
    """Insert or update ``aggregate`` with an optimistic version check.

    The row is written only if nobody changed it since it was loaded; otherwise
    :class:`ConcurrentUpdate` is raised and nothing is written.
    """
    model = type(aggregate)
    if aggregate._state.adding:
        aggregate.version = 1
        aggregate.save(force_insert=True)
        return
    expected = aggregate.version
    values = {
        field.attname: getattr(aggregate, field.attname)
        for field in model._meta.concrete_fields
        if not field.primary_key and field.attname != "version"
    }
    updated = model._default_manager.filter(pk=aggregate.pk, version=expected).update(version=expected + 1, **values)
    if updated != 1:
        raise ConcurrentUpdate(model.__name__, aggregate.pk, expected)
    aggregate.version = expected + 1


def bulk_save_locked(aggregates: list[AggregateRoot], fields: list[str]) -> None:
    """Save many aggregates whose rows this transaction has locked (SELECT … FOR UPDATE).

    Bulk jobs (a bill run) load a batch under lock, call each aggregate's
    method, then write them in one statement. The lock is what makes the
    version check unnecessary here; versions still advance so later
    optimistic writers see the change.
    """
    if not aggregates:
        return
    for aggregate in aggregates:
        aggregate.version += 1
    bulk_update_rows(aggregates, [*fields, "version"])

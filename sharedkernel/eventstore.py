"""The event store, which is also the transactional outbox.

Contract:

* :func:`append` must run inside the transaction that saves the aggregate. It
  writes the events and one :class:`EventDelivery` per subscribed handler;
  nothing is sent before commit. After commit the ``events_committed`` signal
  announces the deliveries (see :mod:`sharedkernel.bus`).
* Stored events are never updated or deleted; ``position`` is the global order
  used by replay and by ``GET /api/v1/events/?after=``.
* Reading always upcasts old payload versions, so readers see the current shape.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from functools import partial

import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sharedkernel.aggregates import AggregateRoot, RecordedEvent, save_aggregate
from sharedkernel.bulk import bound_cursor, insert_columns
from sharedkernel.correlation import Cause, current_cause
from sharedkernel.declarations import check_recorded
from sharedkernel.events import DomainEvent, upcast
from sharedkernel.models import DeliveryStatus, EventDelivery, StoredEvent
from sharedkernel.outside import open_transaction
from sharedkernel.signals import events_committed


def save_and_publish(aggregate: AggregateRoot, *, cause: Cause | None = None) -> list[DomainEvent]:
    """The last line of a command: version-checked save, then append its events."""
    save_aggregate(aggregate)
    return append(aggregate.pull_events(), cause=cause)


def append(recorded: Sequence[RecordedEvent], *, cause: Cause | None = None) -> list[DomainEvent]:
    """Append events caused by ``cause`` (default: the current chain)."""
    return append_batch([(cause or current_cause(), recorded)])


def append_batch(groups: Iterable[tuple[Cause, Sequence[RecordedEvent]]]) -> list[DomainEvent]:
    """Append many aggregates' events at once (bulk handlers), each group with its own cause."""
    from sharedkernel.handlers import deliveries_for  # the registry imports the store

    events: list[DomainEvent] = []
    for cause, recorded in groups:
        for item in recorded:
            clock = item.test_clock_id or cause.test_clock_id
            events.append(
                DomainEvent(
                    event_id=str(uuid.uuid4()),
                    event_type=item.event.event_type,
                    event_version=item.event.event_version,
                    occurred_on=item.occurred_on,
                    aggregate_type=item.aggregate_type,
                    aggregate_id=str(item.aggregate_id),
                    aggregate_version=item.aggregate_version,
                    payload=item.event.payload(),
                    correlation_id=cause.correlation_id,
                    causation_id=cause.causation_id,
                    test_clock_id=str(clock) if clock else None,
                )
            )
    if not events:
        return []
    check_recorded({e.event_type for e in events})  # what the running command declared it records
    conn = transaction.get_connection()
    # A test's own wrapping transaction (pytest-django's ``db``) does not count: an edge that appends
    # without opening one (a view outside ``@command``) fails in every test, not only committed ones.
    if not open_transaction(conn.alias):
        raise RuntimeError("Events are appended inside the transaction that saves their aggregate.")
    now = timezone.now()
    positions = _store_events(events, now, conn)
    events = [dataclasses.replace(e, position=p) for e, p in zip(events, positions, strict=True)]
    handlers = deliveries_for({e.event_type for e in events})
    pairs = [(e, handler.name) for e in events for handler in handlers[e.event_type]]
    ids = _store_deliveries(pairs, now, conn)
    if ids:
        announced = [(handler, pk) for (_, handler), pk in zip(pairs, ids, strict=True)]
        transaction.on_commit(partial(events_committed.send, sender=StoredEvent, deliveries=announced))
    return events


def _store_events(events: list[DomainEvent], now, conn) -> list[int]:
    """Their positions. On PostgreSQL one statement of arrays, no model instances (the hot path)."""
    if conn.vendor != "postgresql":
        rows = [
            StoredEvent(recorded_at=now, **{f: getattr(e, f) for f in _ROW_FIELDS if f != "position"}) for e in events
        ]
        StoredEvent.objects.bulk_create(rows)
        return [row.position for row in rows]
    from psycopg.types.json import Jsonb

    columns = {f: [getattr(e, f) for e in events] for f in _ROW_FIELDS if f != "position"}
    columns["event_id"] = [uuid.UUID(i) for i in columns["event_id"]]
    columns["test_clock_id"] = [uuid.UUID(c) if c else None for c in columns["test_clock_id"]]
    columns["payload"] = [Jsonb(p, dumps=payload_json) for p in columns["payload"]]
    columns["recorded_at"] = [now] * len(events)
    return insert_columns(StoredEvent, columns)


def payload_json(payload: dict) -> bytes:
    """A payload as JSON text for PostgreSQL. orjson is ten times json.dumps on the big payloads
    (a usage batch's totals); json.dumps takes what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return json.dumps(payload).encode()


def _store_deliveries(pairs: list[tuple[DomainEvent, str]], now, conn) -> list[int]:
    """One delivery per (event, handler), open and due for the relay after OUTBOX_REDISPATCH_AFTER."""
    if not pairs:
        return []
    redispatch_at = now + settings.OUTBOX_REDISPATCH_AFTER
    if conn.vendor != "postgresql":
        rows = [
            EventDelivery(
                event_id=e.position,
                handler=h,
                dispatch_after=redispatch_at,
                created_at=now,
                test_clock_id=e.test_clock_id,
            )
            for e, h in pairs
        ]
        EventDelivery.objects.bulk_create(rows)
        return [row.pk for row in rows]
    return insert_columns(
        EventDelivery,
        {
            "event_id": [e.position for e, _ in pairs],
            "handler": [h for _, h in pairs],
            "status": [DeliveryStatus.PENDING.value] * len(pairs),
            "attempts": [0] * len(pairs),
            "last_error": [""] * len(pairs),
            "dispatch_after": [redispatch_at] * len(pairs),
            "created_at": [now] * len(pairs),
            "test_clock_id": [uuid.UUID(e.test_clock_id) if e.test_clock_id else None for e, _ in pairs],
        },
    )


def to_domain_event(row: StoredEvent) -> DomainEvent:
    return _domain_event({name: getattr(row, name) for name in _ROW_FIELDS})


def _domain_event(fields: dict) -> DomainEvent:
    """A stored row's fields as the event subscribers receive: upcast, ids as text."""
    fields["event_version"], fields["payload"] = upcast(
        fields["event_type"], fields["event_version"], fields["payload"]
    )
    fields["event_id"] = str(fields["event_id"])
    fields["test_clock_id"] = str(fields["test_clock_id"]) if fields["test_clock_id"] else None
    return DomainEvent(**fields)


#: A stored row's columns are the envelope's fields, in its order.
_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(DomainEvent))


def events_at(positions: Iterable[int]) -> list[DomainEvent]:
    """The events at these positions, in order (plain rows: no model instances on the delivery path)."""
    positions = list(positions)
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        columns = ", ".join("payload::text" if f == "payload" else f for f in _ROW_FIELDS)
        with bound_cursor(connection) as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {StoredEvent._meta.db_table} WHERE position = ANY(%b::int8[]) "
                "ORDER BY position",
                [positions],
            )
            at = _ROW_FIELDS.index("payload")  # fetched as text, parsed once here
            rows = [(*row[:at], json.loads(row[at]), *row[at + 1 :]) for row in cursor.fetchall()]
    else:
        query = StoredEvent.objects.filter(position__in=positions).order_by("position")
        rows = list(query.values_list(*_ROW_FIELDS))
    return [_domain_event(dict(zip(_ROW_FIELDS, row, strict=True))) for row in rows]


def read(
    *,
    after: int = 0,
    event_types: Iterable[str] | None = None,
    aggregate_id: str | None = None,
    chunk: int = 1000,
) -> Iterator[DomainEvent]:
    """Stored events in global order after ``after``, upcast, streamed in chunks."""
    position = after
    while True:
        query = StoredEvent.objects.filter(position__gt=position).order_by("position")
        if event_types is not None:
            query = query.filter(event_type__in=list(event_types))
        if aggregate_id is not None:
            query = query.filter(aggregate_id=aggregate_id)
        rows = list(query[:chunk])
        if not rows:
            return
        for row in rows:
            yield to_domain_event(row)
        position = rows[-1].position


def cause_of(event: DomainEvent) -> Cause:
    """The cause for whatever a handler records in reaction to ``event``."""
    return Cause(event.correlation_id, event.event_id, event.test_clock_id)

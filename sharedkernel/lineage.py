"""An aggregate's story in the event store: its own events and everything they caused.

``lineage(aggregate_id)`` is what a subscription's timeline shows. An event belongs
to the lineage of an aggregate when

1. it is one of the aggregate's own events (or of a related aggregate its owner
   names: a subscription's usage counters), or
2. its ``causation_id`` is an event of the lineage (the handler that recorded it
   reacted to that event: an invoice for a renewal, the e-mail for an invoice,
   a webhook delivery of a payment), or
3. it is an event of an aggregate *born* in the lineage — one whose first event
   is in it — such as the invoice a renewal generated and the payment that
   collects it. Later events of such an aggregate belong to it even when time,
   not an event, started them (a payment retry, a dunning step start chains of
   their own), and so does whatever those cause.

Correlation ids are not followed: a chain that begins with CustomerRegistered
also carries the customer's other subscriptions, the billing account and the
welcome e-mail. An aggregate born before the lineage (the customer's billing
account, where a plan change's credit is recorded) contributes only the events
the lineage caused, never the rest of its history.

The walk goes breadth-first, a few indexed queries per generation of the chain
(causation ids and aggregate ids are indexed), never one per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.db.models import Min

from sharedkernel.models import StoredEvent

_CHUNK = 1000


def _chunks(values: list, size: int = _CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _rows(field: str, values: Iterable) -> list[tuple[int, str, str, str]]:
    """(position, event_id, aggregate_type, aggregate_id) of the events whose ``field`` is in ``values``."""
    found = []
    for chunk in _chunks(sorted(set(values))):
        found += StoredEvent.objects.filter(**{f"{field}__in": chunk}).values_list(
            "position", "event_id", "aggregate_type", "aggregate_id"
        )
    return [(position, str(event_id), kind, aggregate) for position, event_id, kind, aggregate in found]


def _first_positions(aggregates: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    firsts: dict[tuple[str, str], int] = {}
    for chunk in _chunks(sorted({aggregate_id for _, aggregate_id in aggregates})):
        query = (
            StoredEvent.objects.filter(aggregate_id__in=chunk)
            .values("aggregate_type", "aggregate_id")
            .annotate(first=Min("position"))
            .values_list("aggregate_type", "aggregate_id", "first")
        )
        firsts.update({(kind, aggregate): first for kind, aggregate, first in query})
    return firsts


def lineage(aggregate_id: str, *, related: Iterable[tuple[str, str]] = ()) -> list[int]:
    """Positions, in stored order, of the events of ``aggregate_id`` and of every event they led to.

    ``related``: (aggregate_type, aggregate_id) of other aggregates that belong to the story
    although nothing in it caused them (the owner knows them: a subscription's usage counters
    and closed usage periods); their events are roots too.
    """
    known: set[int] = set()
    first_of: dict[tuple[str, str], int] = {}  # an aggregate's first position never changes: asked once
    adopted: set[tuple[str, str]] = set()
    related = {(str(kind), str(aggregate)) for kind, aggregate in related}
    frontier = [
        row
        for row in _rows("aggregate_id", [str(aggregate_id), *(a for _, a in related)])
        if row[3] == str(aggregate_id) or (row[2], row[3]) in related  # ids of different types may be equal
    ]
    adopted |= {(kind, aggregate) for _, _, kind, aggregate in frontier}
    while frontier:
        fresh = list({row[0]: row for row in frontier if row[0] not in known}.values())
        known.update(row[0] for row in fresh)
        seen = {(kind, aggregate) for _, _, kind, aggregate in fresh} - adopted
        first_of.update(_first_positions({key for key in seen if key not in first_of}))
        born = {key for key in seen if first_of.get(key) in known}
        adopted |= born
        frontier = [
            *_rows("causation_id", [event_id for _, event_id, _, _ in fresh]),
            *(row for row in _rows("aggregate_id", [a for _, a in born]) if (row[2], row[3]) in born),
        ]
    return sorted(known)

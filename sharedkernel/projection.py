"""Applying events to a projection: in stored order, each exactly once.

A projection (a read model one context builds from another's events, such as
Billing's copy of a subscription) must not compare aggregate versions to decide
what it has seen: one command may record several events at one version
(a trial that converts records ``TrialExpired`` and ``SubscriptionActivated``,
both at the version it saved), so "version ≤ last applied" drops the second.
The event store's global position (``StoredEvent.position``) is the order:

1. A projection row keeps the position of the last event *of its aggregate* it
   applied, in a column made by :func:`applied_position_field` (0: none yet).
2. An event at or below that position is a duplicate (a redelivery, a replay
   over rows that are already there) and is skipped; anything above it is
   applied, and the row moves to its position (:meth:`AppliedPosition.take`).
3. A batch is applied in position order (:func:`in_stored_order`). The bus
   already hands a handler its batch in that order (deliveries are loaded
   ``ORDER BY position``) and ``replay_events`` reads the store in that order;
   sorting again is cheap and keeps the rule true for any caller.

Why one position per aggregate is enough: writers of one aggregate are
serialised by its version check, so a later command on it appends — and so
takes positions — only after the earlier one committed. Its events therefore
commit in position order, and a row that has applied position *p* has applied
everything of that aggregate before *p*. Events of *other* aggregates folded
into the same row (a payment's failure counted on a subscription's row) are
not ordered against it by this rule: the delivery ledger keeps those to once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from django.db import models

from sharedkernel.events import DomainEvent

T = TypeVar("T")


def applied_position_field() -> models.BigIntegerField:
    """The column a projection row keeps its last applied position in."""
    return models.BigIntegerField(
        default=0,
        help_text="Event-store position of the last event of this aggregate applied here (0: none).",
    )


def _position(event: DomainEvent) -> int:
    if event.position is None:
        raise ValueError(f"{event.event_type} {event.event_id} has no stored position; only stored events project.")
    return event.position


def in_stored_order(items: Iterable[T], *, event: Callable[[T], DomainEvent] = lambda item: item) -> list[T]:
    """``items`` (events, or tuples holding one: say which with ``event``) sorted by stored position."""
    return sorted(items, key=lambda item: _position(event(item)))


@dataclass(frozen=True)
class AppliedPosition:
    """The rule of this module for rows whose column ``field`` holds the last applied position."""

    field: str

    def is_new(self, row: object, event: DomainEvent) -> bool:
        """Whether ``event`` comes after everything ``row`` has applied (else it is a duplicate)."""
        return _position(event) > getattr(row, self.field)

    def take(self, row: object, event: DomainEvent) -> bool:
        """Mark ``event`` applied to ``row`` if it is new; returns whether the caller should apply it."""
        if not self.is_new(row, event):
            return False
        setattr(row, self.field, _position(event))
        return True

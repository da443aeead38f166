"""Writing many aggregates at once: the unit of work every command saves through, and the
batch item (:class:`Work`) the pipeline steps take."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import models

from sharedkernel.aggregates import AggregateRoot
from sharedkernel.bulk import bulk_update_rows, insert_rows
from sharedkernel.clock import Clock, clock_for
from sharedkernel.correlation import Cause, current_cause, new_correlation_id
from sharedkernel.eventstore import append_batch

# -- writing many aggregates at once ----------------------------------------------------


def _fields(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if not f.primary_key and f.name != "version"]


@dataclass
class UnitOfWork:
    """Collects new and changed aggregates of one transaction and writes them in bulk.

    Changed aggregates must have been loaded under ``select_for_update`` (the
    lock replaces the optimistic version check); versions still advance.
    """

    new: list[tuple[AggregateRoot, Cause]] = field(default_factory=list)
    changed: list[tuple[AggregateRoot, Cause]] = field(default_factory=list)
    rows: list[models.Model] = field(default_factory=list)

    def add(self, aggregate: AggregateRoot, cause: Cause) -> None:
        self.new.append((aggregate, cause))

    def touch(self, aggregate: AggregateRoot, cause: Cause) -> None:
        if not any(a is aggregate for a, _ in self.changed):
            self.changed.append((aggregate, cause))

    def commit(self) -> None:
        for aggregate, _ in self.new:
            aggregate.version = 1
        for items in _by_model(a for a, _ in self.new).values():
            insert_rows(items)
        for model, items in _by_model(a for a, _ in self.changed).items():
            for aggregate in items:
                aggregate.version += 1
            bulk_update_rows(items, [*_fields(model), "version"])
        children = [*self.rows]
        for aggregate, _ in [*self.new, *self.changed]:
            for take in ("take_new_lines", "take_new_children"):
                if hasattr(aggregate, take):
                    children.extend(getattr(aggregate, take)())
        for items in _by_model(children).values():
            insert_rows(items)
        append_batch((cause, aggregate.pull_events()) for aggregate, cause in [*self.new, *self.changed])


def _by_model(items: Iterable[models.Model]) -> dict[type, list]:
    grouped: dict[type, list] = defaultdict(list)
    for item in items:
        grouped[type(item)].append(item)
    return grouped


@dataclass(frozen=True)
class Work:
    """One item of a batch: what to act on, when it happens, and what caused it."""

    id: str
    at: datetime
    cause: Cause


def single_work(id_: str, clock: Clock | None, test_clock_id) -> list[Work]:
    return [Work(str(id_), (clock or clock_for(test_clock_id)).now(), current_cause())]


def new_cause_for(test_clock_id) -> Cause:
    """A fresh chain for work that time starts (a retry, a dunning step)."""
    return Cause(new_correlation_id(), None, str(test_clock_id) if test_clock_id else None)

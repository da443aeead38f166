"""Events of the PriceMigration aggregate (staff operations, internal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sharedkernel.events import Event


@dataclass(frozen=True)
class PriceMigrationEvent(Event):
    aggregate_type = "PriceMigration"
    aggregate_id_field = "migration_id"
    public = False

    migration_id: str


@dataclass(frozen=True)
class PriceMigrationDrafted(PriceMigrationEvent):
    """Staff drafted a move of a plan's subscriptions to ``to_version``. Empty lists select all:
    ``from_versions`` (all older versions), ``currencies``, ``subscription_ids`` (all matching)."""

    event_type = "subscriptions.PriceMigrationDrafted"

    plan_id: str
    to_version: int
    effective_from: datetime
    from_versions: list[int] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)
    created_before: datetime | None = None


@dataclass(frozen=True)
class PriceMigrationStarted(PriceMigrationEvent):
    """The migration schedules its price changes (in batches, by the beat job)."""

    event_type = "subscriptions.PriceMigrationStarted"


@dataclass(frozen=True)
class PriceMigrationPaused(PriceMigrationStarted):
    """No more price changes are scheduled until it is resumed (scheduled ones still apply)."""

    event_type = "subscriptions.PriceMigrationPaused"


@dataclass(frozen=True)
class PriceMigrationResumed(PriceMigrationStarted):
    """Scheduling continues where it stopped."""

    event_type = "subscriptions.PriceMigrationResumed"


@dataclass(frozen=True)
class PriceMigrationCancelled(PriceMigrationStarted):
    """The migration stops; price changes it scheduled and that have not happened are cancelled."""

    event_type = "subscriptions.PriceMigrationCancelled"


@dataclass(frozen=True)
class PriceMigrationCompleted(PriceMigrationStarted):
    """Every selected subscription has its price change scheduled or was left out."""

    event_type = "subscriptions.PriceMigrationCompleted"

    scheduled: int
    left_out: int

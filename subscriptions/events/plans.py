"""Events of the Plan aggregate: internal catalogue events, not sent to webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sharedkernel.events import Event
from sharedkernel.values import Money, UnitRate


@dataclass(frozen=True)
class PlanEvent(Event):
    aggregate_type = "Plan"
    aggregate_id_field = "plan_id"
    public = False

    plan_id: str
    code: str


@dataclass(frozen=True)
class PlanCreated(PlanEvent):
    """A plan was added to the catalogue."""

    event_type = "subscriptions.PlanCreated"

    name: str
    tier: str
    interval: str
    trial_days: int
    prices: list[Money]  #: one per currency the plan is sold in
    features: list[str] = field(default_factory=list)
    included_usage: dict[str, int] = field(default_factory=dict)  #: metric → quantity per period
    #: metric → price per unit, per currency (up to 6 decimals; stored events wrote the same JSON as Money)
    overage_rates: dict[str, list[UnitRate]] = field(default_factory=dict)
    version: int = 1  #: the plan version these terms are (1, 2, 3, …)
    current_from: datetime | None = None  #: when this version became current for new subscriptions


@dataclass(frozen=True)
class PlanUpdated(PlanCreated):
    """A new version of a plan: its complete terms, current for new subscriptions from
    ``current_from``. Existing subscriptions stay on their version (and price) until a
    price migration moves them (PriceChanged)."""

    event_type = "subscriptions.PlanUpdated"


@dataclass(frozen=True)
class PlanArchived(PlanEvent):
    """No new subscriptions to this plan; existing ones stay valid."""

    event_type = "subscriptions.PlanArchived"


@dataclass(frozen=True)
class PlanRestored(PlanArchived):
    """An archived plan is offered again."""

    event_type = "subscriptions.PlanRestored"

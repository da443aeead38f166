"""The value objects Subscriptions events carry: a plan reference and a billing period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PlanRef:
    """The plan as billing, notifications and analytics need it."""

    id: str
    code: str
    name: str
    tier: str  #: basic | professional | enterprise
    interval: str  #: month | year
    version: int = 1  #: the plan version the subscription is billed on after the event


@dataclass(frozen=True)
class PeriodRef:
    """A billing period [start, end) and the billing anchor its grid is counted from.

    The period after one ending at ``end`` is ``sharedkernel.periods.period_after(anchor,
    plan interval, end)`` — the rule Subscriptions renews by (a Jan 31 anchor: Feb 28, Mar 31).
    During a trial ``anchor`` is the trial's end, where billing starts. ``anchor`` is absent
    from events stored before it was published, and from usage periods.
    """

    start: datetime
    end: datetime
    anchor: datetime | None = None

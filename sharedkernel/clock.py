"""Time, injected.

Domain code never asks the system for the time. Commands receive a
:class:`Clock`; a customer attached to a :class:`~sharedkernel.models.TestClock`
gets that clock, frozen until someone advances it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from django.utils import timezone as django_timezone


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return django_timezone.now()

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock standing still at ``at`` (tests, demo history, replay)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("A clock tells timezone-aware time.")
        self.at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self.at

    def __repr__(self) -> str:
        return f"FixedClock({self.at.isoformat()})"


class TestClockTime:
    """The current frozen time of a test clock, read when asked."""

    __test__ = False

    def __init__(self, test_clock_id: str) -> None:
        self.test_clock_id = str(test_clock_id)

    def now(self) -> datetime:
        from sharedkernel.models import TestClock

        return TestClock.objects.values_list("frozen_time", flat=True).get(pk=self.test_clock_id)

    def __repr__(self) -> str:
        return f"TestClockTime({self.test_clock_id})"


def clock_for(test_clock_id: object | None) -> Clock:
    """The clock a customer lives on: their test clock, or real time."""
    return TestClockTime(str(test_clock_id)) if test_clock_id else SystemClock()
